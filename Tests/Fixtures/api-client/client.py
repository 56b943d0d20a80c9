#!/usr/bin/python3
"""A program written against protocol/openapi.yaml alone: it finds each operation by its
operationId, and checks every answer against the document's schemas with a real JSON Schema
validator (Draft 2020-12, as OpenAPI 3.1 uses). It submits a swarm and follows its events to
the end, cancels another, and reads every other route.

    client.py --spec protocol/openapi.yaml (--socket PATH | --url URL --token TOKEN) --job FILE --slow-job FILE

Prints one line per answer checked; exits 1 on the first answer the document does not allow.
Standard library, PyYAML and jsonschema only (Debian: python3-yaml, python3-jsonschema).
"""
import argparse
import http.client
import json
import socket
import sys
import time
import urllib.parse

import jsonschema
import yaml


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("purser", timeout=60)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(self.unix_path)


class Client:
    def __init__(self, spec, socket_path=None, url=None, token=None):
        self.spec = spec
        self.socket_path, self.url, self.token = socket_path, url, token
        self.operations = {}
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                self.operations[operation["operationId"]] = (method.upper(), path, operation)
        self.checked = 0

    def connection(self):
        if self.socket_path:
            return UnixConnection(self.socket_path)
        parsed = urllib.parse.urlsplit(self.url)
        return http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)

    def request(self, operation_id, parameters=None, query=None, body=None, content_type="application/json"):
        method, template, _ = self.operations[operation_id]
        path = template
        for name, value in (parameters or {}).items():
            path = path.replace("{" + name + "}", urllib.parse.quote(value, safe=""))
        if query:
            path += "?" + urllib.parse.urlencode(query)
        headers = {"Content-Type": content_type} if body is not None else {}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        connection = self.connection()
        connection.request(method, path, body=body, headers=headers)
        return connection.getresponse(), connection

    def call(self, operation_id, **arguments):
        response, connection = self.request(operation_id, **arguments)
        data = response.read()
        connection.close()
        value = json.loads(data)
        self.check(operation_id, response.status, value)
        return response.status, value

    def schema_for(self, operation_id, status, media="application/json"):
        _, _, operation = self.operations[operation_id]
        answer = operation["responses"].get(str(status))
        if answer is None:
            fail(f"{operation_id}: status {status} is not in the document")
        answer = self.resolve(answer)
        return answer["content"][media].get("schema")

    def resolve(self, value):
        while isinstance(value, dict) and "$ref" in value:
            node = self.spec
            for key in value["$ref"][2:].split("/"):
                node = node[key.replace("~1", "/")]
            value = node
        return value

    def validate(self, what, schema, value):
        resolver = jsonschema.RefResolver(base_uri="", referrer=self.spec)
        errors = sorted(jsonschema.Draft202012Validator(schema, resolver=resolver).iter_errors(value), key=str)
        if errors:
            fail(f"{what}: {errors[0].message} at {list(errors[0].absolute_path)}")
        self.checked += 1
        print(f"ok {what}")

    def check(self, operation_id, status, value):
        self.validate(f"{operation_id} {status}", self.schema_for(operation_id, status), value)

    def events(self, swarm_id):
        """Follows the event stream to its end event; checks each event and the report."""
        response, connection = self.request("swarmEvents", parameters={"id": swarm_id})
        if response.status != 200:
            fail(f"swarmEvents: status {response.status}")
        if not response.getheader("Content-Type", "").startswith("text/event-stream"):
            fail("swarmEvents: not text/event-stream")
        name, data, seen, report = "message", [], 0, None
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            elif line == "" and data:
                value = json.loads("\n".join(data))
                if name == "end":
                    self.validate("swarmEvents end", {"$ref": "#/components/schemas/Report"}, value)
                    report = value
                elif name == "error":
                    fail(f"swarmEvents: error event {value}")
                else:
                    self.validate(f"swarmEvents {value.get('event')}", {"$ref": "#/components/schemas/SwarmEvent"}, value)
                    seen += 1
                name, data = "message", []
        connection.close()
        if report is None:
            fail("swarmEvents: the stream closed without its end event")
        return seen, report


def fail(message):
    print("FAIL " + message)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    parser.add_argument("--socket")
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--job", required=True)
    parser.add_argument("--slow-job", required=True)
    arguments = parser.parse_args()
    with open(arguments.spec) as file:
        spec = yaml.safe_load(file)
    client = Client(spec, arguments.socket, arguments.url, arguments.token)

    with open(arguments.job) as file:
        status, submitted = client.call("submitSwarm", query={"file": "job.yaml"}, body=file.read(), content_type="application/yaml")
    if status != 201:
        fail(f"submitSwarm: {status}")
    swarm_id = submitted["swarmId"]
    seen, report = client.events(swarm_id)
    if report["verdict"] != "ok":
        fail(f"the swarm ended {report['verdict']}")
    client.call("getSwarm", parameters={"id": swarm_id})
    client.call("listSwarms", query={"limit": 10})
    team = report["team"]
    client.call("getTeam", parameters={"name": team})
    client.call("listHosts")
    client.call("listPlugins")
    client.call("listIntegrations")
    client.call("verifyLedger")

    with open(arguments.slow_job) as file:
        _, slow = client.call("submitSwarm", body=file.read(), content_type="application/yaml")
    status, _ = client.call("cancelSwarm", parameters={"id": slow["swarmId"]})
    if status != 202:
        fail(f"cancelSwarm: {status}")
    deadline = time.time() + 60
    while True:
        _, shown = client.call("getSwarm", parameters={"id": slow["swarmId"]})
        if shown["state"] == "done" or time.time() > deadline:
            break
        time.sleep(0.2)
    if shown["verdict"] != "cancelled":
        fail(f"the cancelled swarm ended {shown['state']} {shown['verdict']}")
    client.call("freezeTeam", parameters={"name": team}, body=json.dumps({"reason": "client check"}))
    client.call("thawTeam", parameters={"name": team})
    client.call("getSwarm", parameters={"id": "s-none"})
    print(f"checked {client.checked} answers against the document; {seen} events, then the report")


main()
