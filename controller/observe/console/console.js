// The kraft-controller console: polls /api/state, streams /api/events (server-sent events).
"use strict";

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function show(v) {
  return v === null || v === undefined || v === "" ? "?" : v;
}

function renderQuorum(q) {
  $("#quorum-summary").textContent =
    `leader ${show(q.leader_id)} · term ${q.term} · commit index ${q.commit_index}` +
    ` · applied ${q.applied_index} · this controller is ${q.role}` +
    (q.view_from !== q.node_id ? ` · lags as seen by leader ${q.view_from}` : "");
  const rows = [];
  for (const [kind, members] of [["voter", q.voters], ["observer", q.observers]]) {
    for (const m of members) {
      const tr = el("tr", {class: m.id === q.leader_id ? "leader" : ""},
        el("td", {}, m.id), el("td", {}, kind), el("td", {}, show(m.client_address)),
        el("td", {}, m.raft_address), el("td", {}, show(m.log_end)), el("td", {}, show(m.lag)),
        el("td", {}, m.last_contact_ms === null ? "?" : `${m.last_contact_ms} ms`));
      rows.push(tr);
    }
  }
  fill($("#quorum tbody"), rows);
}

function renderBrokers(b, bc) {
  $("#brokers-summary").textContent =
    `active controller ${show(b.active_controller)} · controller epoch ${b.controller_epoch}` +
    ` · ${b.brokers.length} live`;
  fill($("#brokers tbody"), b.brokers.map((x) => el("tr", {},
    el("td", {}, x.id), el("td", {}, show(x.rack)), el("td", {}, `${x.host}:${x.port}`),
    el("td", {}, x.epoch), el("td", {}, x.live ? "yes" : "no"), el("td", {}, x.leaders)))
    .concat((b.offline_brokers || []).map((id) => el("tr", {class: "dead"},
      el("td", {}, id), el("td", {}, "?"), el("td", {}, "?"), el("td", {}, "?"),
      el("td", {}, "no"), el("td", {}, 0)))));
}

function renderTopics(t) {
  $("#topics-summary").textContent =
    `${t.topics.length} topics · ${t.partitions} partitions · ` +
    `${t.offline_partitions} offline · ${t.under_replicated_partitions} under-replicated` +
    (t.truncated ? " · (list truncated)" : "");
  const blocks = [];
  for (const topic of t.topics) {
    const table = el("table", {});
    const headRow = el("tr", {});
    for (const h of ["partition", "leader", "leader epoch", "replicas", "ISR"]) {
      headRow.append(el("th", {}, h));
    }
    const head = el("thead", {});
    head.append(headRow);
    table.append(head);
    const body = el("tbody", {});
    for (const p of topic.partitions) {
      const cls = p.offline ? "offline" : (p.under_replicated ? "underrep" : "");
      body.append(el("tr", {class: cls},
        el("td", {}, p.partition), el("td", {}, p.leader === -1 ? "none" : p.leader),
        el("td", {}, p.leader_epoch), el("td", {}, p.replicas.join(",")),
        el("td", {}, p.isr.join(","))));
    }
    table.append(body);
    blocks.push(el("h3", {}, `${topic.name} (${topic.partition_count} partitions)`), table);
  }
  $("#topics").replaceChildren(...blocks);
}

async function refresh() {
  try {
    const response = await fetch("/api/state", {cache: "no-store"});
    const s = await response.json();
    const a = s.answered_by;
    $("#answered").textContent =
      `answered by controller ${a.node_id} (${a.role}, client ${a.client_address}) · ${a.version}`;
    renderQuorum(s.quorum);
    renderBrokers(s.brokers, s.broker_controller);
    renderTopics(s.topics);
    setConn(true);
  } catch (e) {
    setConn(false);
  }
}

function setConn(ok) {
  const badge = $("#conn");
  badge.textContent = ok ? "live" : "disconnected";
  badge.className = "badge " + (ok ? "ok" : "bad");
}

function addEvent(e) {
  const list = $("#timeline");
  const time = new Date(e.time_ms).toLocaleTimeString();
  list.prepend(el("li", {class: e.kind}, el("span", {class: "t"}, time), e.text));
  while (list.children.length > 500) list.lastChild.remove();
}

function stream() {
  const source = new EventSource("/api/events");
  source.onmessage = (m) => addEvent(JSON.parse(m.data));
  source.onerror = () => setConn(false);
}

stream();
refresh();
setInterval(refresh, 1000);
