/// The dashboard's stylesheet and script, served from the server itself (`/dashboard.css`,
/// `/dashboard.js`): no build step, nothing from elsewhere.
enum DashboardAssets {
    /// The page's live part comes as Server-Sent Events (`?part=stream`, server-rendered and
    /// escaped) and is swapped in (without EventSource: fetched every second); buttons POST to
    /// the API with the session's cookie.
    static let script = #"""
        "use strict";
        (function () {
          const live = document.getElementById("live");
          const status = document.getElementById("status");
          let busy = false;
          // An action's failure stays in view a while; refreshes do not write over it.
          let heldUntil = 0;
          function say(text, down, hold) {
            if (!hold && Date.now() < heldUntil) return;
            if (hold) heldUntil = Date.now() + 8000;
            status.textContent = text;
            status.className = down ? "status down" : "status";
          }
          async function refresh() {
            if (busy || !live) return;
            busy = true;
            try {
              const url = new URL(location.href);
              url.searchParams.set("part", "live");
              const answer = await fetch(url, { credentials: "same-origin", cache: "no-store", redirect: "manual" });
              if (answer.status === 401 || answer.type === "opaqueredirect") { location.assign("/login"); return; }
              if (!answer.ok) { say("error " + answer.status, true); return; }
              live.innerHTML = await answer.text();
              say("live · " + new Date().toLocaleTimeString(), false);
            } catch (error) {
              say("offline", true);
            } finally {
              busy = false;
            }
          }
          // A stream the server closed (it stopped, or the login ended) is followed again after a
          // look at the page: a 401 there sends the person to the login.
          function follow() {
            const url = new URL(location.href);
            url.searchParams.set("part", "stream");
            const source = new EventSource(url);
            source.addEventListener("live", function (event) {
              live.innerHTML = event.data;
              say("live · " + new Date().toLocaleTimeString(), false);
            });
            source.onerror = function () {
              if (source.readyState !== EventSource.CLOSED) { say("reconnecting", true); return; }
              source.close();
              say("offline", true);
              setTimeout(async function () { await refresh(); follow(); }, 2000);
            };
          }
          if (live && window.EventSource) follow(); else setInterval(refresh, 1000);
          document.addEventListener("click", async function (event) {
            const button = event.target.closest("button[data-post]");
            if (!button) return;
            let body;
            const headers = {};
            if (button.dataset.ask !== undefined) {
              const reason = window.prompt(button.dataset.ask);
              if (reason === null) return;
              body = JSON.stringify({ reason: reason });
              headers["Content-Type"] = "application/json";
            } else if (!window.confirm(button.dataset.confirm || "Are you sure?")) {
              return;
            }
            button.disabled = true;
            try {
              const answer = await fetch(button.dataset.post, { method: "POST", credentials: "same-origin", headers: headers, body: body });
              if (!answer.ok) {
                let message = "HTTP " + answer.status;
                try { message = (await answer.json()).error.message; } catch (ignored) {}
                say(message, true, true);
              }
            } catch (error) {
              say("offline", true, true);
            }
            refresh();
          });
        })();

        """#

    static let style = """
        :root { --used: #c0392b; --reserved: #e6a23c; --returned: #7fb77e; --line: #ddd; font-family: "DejaVu Sans", sans-serif; }
        body { margin: 0; color: #222; background: #fafafa; font-size: 14px; }
        header { background: #1f2d3d; color: #fff; padding: 8px 16px; display: flex; gap: 16px; align-items: center; }
        header a.brand { color: #fff; font-weight: bold; text-decoration: none; font-size: 16px; }
        .status { font-size: 12px; color: #9fd49f; }
        .status.down { color: #ff8a80; }
        .logout { margin-left: auto; }
        main { padding: 8px 16px 32px; max-width: 1200px; }
        h2 { font-size: 16px; margin: 20px 0 6px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
        table { border-collapse: collapse; width: 100%; background: #fff; }
        th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { font-weight: normal; color: #666; font-size: 12px; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
        .bar { width: 160px; height: 10px; background: #eee; border: 1px solid #ccc; display: block; }
        .bar .used { fill: var(--used); } .bar .reserved { fill: var(--reserved); } .bar .returned { fill: var(--returned); }
        .legend span::before { content: ""; display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }
        .legend .used::before { background: var(--used); } .legend .reserved::before { background: var(--reserved); }
        .legend .returned::before { background: var(--returned); }
        .depth1 td:first-child { padding-left: 24px; } .depth2 td:first-child { padding-left: 40px; }
        .depth3 td:first-child { padding-left: 56px; }
        .verdict-ok { color: #1e7e34; } .verdict-failed, .verdict-denied, .verdict-error, .verdict-crashed, .verdict-killed { color: #b00020; }
        .verdict-cancelled { color: #8a6d3b; }
        pre.tail { margin: 2px 0; max-height: 8em; overflow: auto; background: #f3f3f3; padding: 4px; font-size: 12px; white-space: pre-wrap; }
        .frozen { color: #fff; background: #2b6cb0; padding: 0 6px; border-radius: 3px; font-size: 12px; }
        .empty { color: #888; }
        table.facts { width: auto; } table.facts th { padding-right: 24px; }
        h1.swarm-name { font-size: 20px; margin: 16px 0 8px; word-break: break-all; }
        form.login { max-width: 360px; margin: 60px auto; background: #fff; padding: 20px; border: 1px solid var(--line); }
        form.login input { width: 100%; box-sizing: border-box; margin: 8px 0; padding: 6px; }
        .error { color: #b00020; }
        button { cursor: pointer; }

        """
}
