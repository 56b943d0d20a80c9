#!/usr/bin/node
// A Purser worker in Node: answers initialize, echoes a run's input, exits on shutdown.
const rl = require('readline').createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const m = JSON.parse(line);
  if (m.id === undefined) return;
  let result = {};
  if (m.method === 'initialize') result = { protocolVersion: 1, plugin: { name: 'echo-node', version: '1.0.0' }, capabilities: {} };
  else if (m.method === 'run') result = { output: m.params.input };
  process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: m.id, result }) + '\n');
  if (m.method === 'shutdown') process.exit(0);
});
