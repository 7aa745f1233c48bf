// Nightdesk agent console: queue, conversation view with context sidebar, live updates over SSE.
(function () {
  "use strict";
  const $ = (sel) => document.querySelector(sel);
  const state = { me: null, tickets: [], current: null, detail: null, source: null };

  async function api(path, options) {
    const opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    if (opts.body && typeof opts.body !== "string") {
      opts.body = JSON.stringify(opts.body);
      opts.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, opts);
    const text = await response.text();
    const data = text ? JSON.parse(text) : {};
    if (!response.ok) {
      const error = new Error(data.detail || ("HTTP " + response.status));
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    });
    (children || []).forEach((c) => node.appendChild(typeof c === "string" ? document.createTextNode(c) : c));
    return node;
  }

  // A bot message the server rendered from Markdown (markdown-it, raw HTML escaped, unsafe links dropped).
  function rich(html) {
    const node = el("div", { class: "text rich" });
    node.innerHTML = html;
    node.querySelectorAll("a").forEach((a) => { a.target = "_blank"; a.rel = "noopener noreferrer"; });
    return node;
  }

  function toast(text) {
    const box = $("#toast");
    box.textContent = text;
    box.style.display = "block";
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.style.display = "none"; }, 5000);
  }

  function beep() {
    try {
      const ctx = new (window.AudioContext || window.webkitAudioContext)();
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.1;
      osc.connect(gain).connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.25);
    } catch (e) { /* no audio device: the toast and notification still show */ }
  }

  function notify(ticket) {
    const title = "New " + ticket.priority + " ticket (" + ticket.language + ", " + ticket.channel + ")";
    // Kept on the page so that a glance (or a test) can tell which tickets were announced.
    const seen = (document.body.getAttribute("data-notified") || "").split(" ").filter(Boolean);
    document.body.setAttribute("data-notified", seen.concat([String(ticket.id)]).join(" "));
    toast(title);
    beep();
    if ("Notification" in window && Notification.permission === "granted") {
      new Notification(title, { body: ticket.priority_reason || "", tag: "ticket-" + ticket.id });
    }
  }

  function slaText(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const late = seconds < 0;
    const s = Math.abs(seconds);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (late ? "late " : "") + (h ? h + "h " : "") + m + "m";
  }

  // ---- queue ------------------------------------------------------------------------------------------
  async function loadQueue() {
    const data = await api("/api/v1/console/tickets");
    state.tickets = data.tickets;
    state.loadedAt = Date.now();
    renderQueue();
  }

  function renderQueue() {
    const box = $("#tickets");
    box.textContent = "";
    if (!state.tickets.length) {
      box.appendChild(el("p", { class: "empty", text: "Nothing waiting for you." }));
      return;
    }
    const elapsed = Math.floor((Date.now() - state.loadedAt) / 1000);
    state.tickets.forEach((t) => {
      const left = t.seconds_left === null ? null : t.seconds_left - elapsed;
      const item = el("div", { class: "ticket" + (state.current === t.id ? " active" : ""), "data-ticket-id": t.id,
                               "data-priority": t.priority }, [
        el("div", { class: "top" }, [
          el("span", { class: "badge " + t.priority, text: t.priority }),
          el("span", { text: "#" + t.id + " · " + t.language + " · " + t.channel }),
          el("span", { class: "sla" + (left !== null && left < 0 ? " late" : ""), text: slaText(left) }),
        ]),
        el("div", { class: "muted", text: (t.status === "claimed" ? "claimed" : t.agent_id ? "routed to you" : "waiting")
          + (t.order_number ? " · order " + t.order_number : "") + " · " + (t.triggers.map((x) => x.name).join(", ")) }),
      ]);
      item.addEventListener("click", () => openTicket(t.id));
      box.appendChild(item);
    });
  }

  // ---- one ticket -------------------------------------------------------------------------------------
  async function openTicket(id) {
    state.current = id;
    renderQueue();
    try {
      state.detail = await api("/api/v1/console/tickets/" + id);
    } catch (e) {
      $("#conversation").textContent = e.message;
      $("#composer").hidden = true;
      return;
    }
    renderDetail();
  }

  function renderDetail() {
    const d = state.detail;
    const t = d.ticket;
    $("#composer").hidden = false;
    $("#ticket-title").textContent = "#" + t.id + " " + t.priority;
    $("#ticket-status").textContent = t.status + (t.breaches.length ? " · SLA breached" : "");
    const conv = $("#conversation");
    conv.textContent = "";
    const items = d.messages.map((m) => ({ at: m.created_at, kind: "msg", m }))
      .concat(d.events.filter((e) => e.kind !== "replied").map((e) => ({ at: e.at, kind: "event", e })))
      .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    items.forEach((item) => {
      if (item.kind === "event") {
        const e = item.e;
        const text = e.kind === "note" ? "Note: " + e.data.text : e.kind.replace(/_/g, " ")
          + (e.data.reason ? " — " + e.data.reason : "") + (e.data.clock ? " (" + e.data.clock + ")" : "");
        conv.appendChild(el("div", { class: "event" + (e.kind === "note" ? " note" : ""), text }));
        return;
      }
      const m = item.m;
      const who = m.direction === "in" ? "shopper" : m.author === "bot" ? "bot" : m.author;
      const node = el("div", { class: "msg " + m.direction + (m.author === "bot" ? " bot" : ""), "data-author": who }, [
        el("div", { class: "meta", text: who + " · " + m.channel + " · " + new Date(m.created_at).toLocaleString() }),
        m.html ? rich(m.html) : el("div", { class: "text", text: m.text }),
      ]);
      if (m.translation && m.translation.text) node.appendChild(el("div", { class: "translation", text: m.translation.text }));
      if (m.translation && m.translation.error) node.appendChild(el("div", { class: "muted", text: "not translated: " + m.translation.error }));
      if (m.decision) {
        const dec = m.decision.decision || {};
        node.appendChild(el("details", { class: "trace" }, [
          el("summary", { text: "Why the bot did this: " + (dec.kind || "?") + (dec.rule ? " (" + dec.rule + ")" : "") }),
          el("pre", { text: JSON.stringify(m.decision, null, 2) }),
        ]));
      }
      conv.appendChild(node);
    });
    conv.scrollTop = conv.scrollHeight;
    const select = $("#canned");
    select.textContent = "";
    select.appendChild(el("option", { value: "", text: "—" }));
    d.canned.forEach((c, i) => select.appendChild(el("option", { value: String(i), text: c.title + (c.error ? " (needs data)" : "") })));
    renderContext(d.context, t);
    renderLeadTools();
  }

  async function renderLeadTools() {
    const isLead = state.me.roles.includes("lead") || state.me.roles.includes("admin");
    $("#lead-tools").hidden = !isLead;
    if (!isLead) return;
    const data = await api("/api/v1/console/team");
    const select = $("#reassign-to");
    select.textContent = "";
    data.members.filter((m) => m.id !== state.detail.ticket.agent_id).forEach((m) => {
      select.appendChild(el("option", { value: String(m.id), text: m.display_name + " (" + m.languages.join(", ")
        + ", " + m.open_threads + "/" + m.max_open_threads + (m.online ? ", online" : ", offline") + ")" }));
    });
  }

  function renderContext(c, t) {
    const box = $("#context");
    box.textContent = "";
    const section = (title, children) => {
      box.appendChild(el("h2", { text: title }));
      box.appendChild(el("section", {}, children));
    };
    section("Why escalated", [el("ul", {}, t.triggers.map((x) => el("li", { text: x.name + ": " + x.reason }))),
      el("div", { class: "muted", text: t.priority_reason })]);
    section("Summary", [el("ul", { id: "summary" }, c.summary.map((s) => el("li", { text: s })))]);
    if (c.facts.length) section("Order numbers and amounts", [el("div", { text: c.facts.join(" · ") })]);
    section("Shopper", [el("div", { text: (c.customer.name || "unknown name") + " · " + c.language }),
      el("div", { class: "muted", text: [c.customer.email, c.customer.phone].filter(Boolean).join(" · ") }),
      el("div", { class: "muted", text: "channels: " + c.channels.join(", ") })]);
    section("NLU", [el("div", { text: "intent: " + (c.intent || "—") }),
      el("div", { class: "muted", text: "sentiment: " + ((c.sentiment && c.sentiment.labels) || []).join(", ") })]);
    if (c.orders.length) section("Orders", [el("ul", { id: "orders" }, c.orders.map((o) => el("li", {}, o.error
      ? [el("span", { text: o.error })]
      : [el("strong", { text: o.number }), el("span", { text: " · " + o.status + " · " + o.total + " · " + o.created }),
         o.tracking_url ? el("a", { href: o.tracking_url, target: "_blank", rel: "noopener", text: " " + (o.carrier || "tracking") }) : el("span", {})])))]);
    if (c.channel_rules && c.channel_rules.length) section("Channel rules", c.channel_rules.map((r) => el("div", {
      class: r.window_open === false ? "warn" : "",
      text: r.channel + ": " + r.rule + (r.reply_by ? " — reply by " + new Date(r.reply_by).toLocaleString() : "")
        + (r.window_open !== undefined ? (r.window_open ? " — window open until " + new Date(r.closes_at).toLocaleString() : " — window closed: template only") : "") })));
    if (c.suggested_reply) section("Suggested reply", [el("div", { id: "suggested", text: c.suggested_reply.text })]);
    if (c.customer && c.customer.id) renderProfile(String(c.customer.id));
  }

  // One customer across channels: identities, conversations, merge and unmerge with an audit trail.
  async function renderProfile(customerId) {
    const box = $("#context");
    const holder = el("section", { id: "profile" });
    box.appendChild(el("h2", { text: "Customer profile" }));
    box.appendChild(holder);
    let p;
    try {
      p = await api("/api/v1/customers/" + encodeURIComponent(customerId));
    } catch (e) {
      holder.appendChild(el("div", { class: "error", text: e.message }));
      return;
    }
    const rerender = () => { box.removeChild(holder.previousSibling); box.removeChild(holder); renderProfile(String(p.id)); };
    holder.appendChild(el("div", { text: "customer #" + p.id + (p.merged_profiles.length ? " (merged: #" + p.merged_profiles.join(", #") + ")" : "") }));
    holder.appendChild(el("ul", { class: "identities" }, p.identities.map((i) => el("li", {
      text: i.channel + ": " + i.address + (i.verified ? " ✓" : "") + " (profile #" + i.customer_id + ")" }))));
    holder.appendChild(el("ul", { class: "conversations" }, p.conversations.map((c) => el("li", {
      text: c.channel + " · " + c.status + " · " + c.owner + " · " + new Date(c.last_message_at).toLocaleString() }))));
    const into = el("input", { type: "number", min: "1", placeholder: "customer #", "aria-label": "merge into customer", id: "merge-into" });
    const reason = el("input", { type: "text", placeholder: "why (audit trail)", "aria-label": "merge reason", id: "merge-reason" });
    const error = el("span", { class: "error", role: "alert" });
    const mergeButton = el("button", { type: "button", id: "merge", text: "Merge into" });
    mergeButton.addEventListener("click", async () => {
      try {
        p = await api("/api/v1/customers/" + p.id + "/merge", { method: "POST", body: { into: Number(into.value), reason: reason.value } });
        rerender();
      } catch (e) { error.textContent = e.message; }
    });
    holder.appendChild(el("div", { class: "row" }, [mergeButton, into, reason, error]));
    p.merged_profiles.forEach((source) => {
      const b = el("button", { type: "button", class: "unmerge", text: "Unmerge #" + source });
      b.addEventListener("click", async () => {
        const why = window.prompt("Why split profile #" + source + " off again?");
        if (!why) return;
        try {
          p = await api("/api/v1/customers/" + source + "/unmerge", { method: "POST", body: { reason: why } });
          rerender();
        } catch (e) { error.textContent = e.message; }
      });
      holder.appendChild(b);
    });
    if (p.merge_history.length) holder.appendChild(el("ul", { class: "audit" }, p.merge_history.map((a) => el("li", {
      text: new Date(a.at).toLocaleString() + " · " + a.action + " #" + a.source + " → #" + a.target + " · " + a.actor + " · " + a.reason }))));
  }

  async function act(action) {
    const id = state.current;
    $("#composer-error").textContent = "";
    try {
      await api("/api/v1/console/tickets/" + id + "/" + action, { method: "POST",
        body: action === "snooze" ? { minutes: 30 } : {} });
      await loadQueue();
      if (["resolve", "hand_back", "release"].includes(action)) {
        toast(action === "hand_back" ? "Handed back to the bot" : action === "resolve" ? "Resolved" : "Released");
      }
      await openTicket(id);
    } catch (e) {
      $("#composer-error").textContent = e.message;
    }
  }

  // ---- live updates -----------------------------------------------------------------------------------
  function connect() {
    if (state.source) state.source.close();
    const source = new EventSource("/api/v1/console/stream");
    state.source = source;
    source.addEventListener("hello", () => { $("#live").textContent = "live"; loadQueue(); });
    source.addEventListener("ticket_routed", (ev) => {
      const data = JSON.parse(ev.data);
      notify(data.ticket);
      loadQueue();
    });
    source.addEventListener("queue", () => loadQueue());
    source.addEventListener("customer_message", (ev) => {
      const data = JSON.parse(ev.data);
      toast("New message on ticket #" + data.ticket.id);
      loadQueue();
      if (state.current === data.ticket.id) openTicket(state.current);
    });
    ["sla_warning", "sla_breach"].forEach((kind) => source.addEventListener(kind, (ev) => {
      const data = JSON.parse(ev.data);
      toast((kind === "sla_breach" ? "SLA breached" : "SLA warning") + " on ticket #" + data.ticket_id);
      loadQueue();
    }));
    source.onerror = () => { $("#live").textContent = "reconnecting…"; };
  }

  // ---- start ------------------------------------------------------------------------------------------
  async function start() {
    try {
      state.me = await api("/api/v1/console/me");
    } catch (e) {
      $("#login").hidden = false;
      $("#app").hidden = true;
      return;
    }
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#logout").hidden = false;
    $("#who").textContent = state.me.display_name + " · " + state.me.team + " · " + state.me.languages.join(", ");
    if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
    await loadQueue();
    connect();
    setInterval(renderQueue, 15000);
  }

  $("#login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    try {
      await api("/api/v1/auth/login", { method: "POST", body: { login: form.get("login"), password: form.get("password") } });
      $("#login-error").textContent = "";
      await start();
    } catch (e) {
      $("#login-error").textContent = e.message;
    }
  });
  $("#logout").addEventListener("click", async () => {
    await api("/api/v1/auth/logout", { method: "POST" });
    location.reload();
  });
  document.querySelectorAll("#composer [data-action]").forEach((b) =>
    b.addEventListener("click", () => act(b.getAttribute("data-action"))));
  $("#reassign").addEventListener("click", async () => {
    $("#composer-error").textContent = "";
    try {
      await api("/api/v1/console/tickets/" + state.current + "/reassign", { method: "POST",
        body: { agent_id: Number($("#reassign-to").value) } });
      toast("Reassigned");
      await loadQueue();
      await openTicket(state.current);
    } catch (e) {
      $("#composer-error").textContent = e.message;
    }
  });
  $("#canned").addEventListener("change", (ev) => {
    const c = state.detail && state.detail.canned[Number(ev.target.value)];
    if (c) $("#reply-text").value = c.text;
    $("#composer-error").textContent = c && c.error ? c.error : "";
  });
  $("#use-suggestion").addEventListener("click", () => {
    const s = state.detail && state.detail.context.suggested_reply;
    if (s) $("#reply-text").value = s.text;
  });
  // Empty the box once its text went out; keep whatever the agent started typing while it was on its way.
  function clearSent(text) {
    if ($("#reply-text").value.trim() === text) $("#reply-text").value = "";
  }
  $("#composer").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("#reply-text").value.trim();
    const files = Array.from($("#reply-files").files || []);
    if (!text && !files.length) return;
    $("#composer-error").textContent = "";
    try {
      const attachments = [];
      for (const file of files) {
        const form = new FormData();
        form.append("file", file);
        const response = await fetch("/api/v1/console/tickets/" + state.current + "/attachments",
          { method: "POST", body: form, credentials: "same-origin" });
        const data = await response.json();
        if (!response.ok) throw new Error(file.name + ": " + (data.detail || response.status));
        attachments.push({ url: data.url, filename: data.filename, mime_type: data.mime_type });
      }
      await api("/api/v1/console/tickets/" + state.current + "/reply", { method: "POST",
        body: { text, translate: $("#translate").checked, attachments } });
      clearSent(text);
      $("#reply-files").value = "";
      await openTicket(state.current);
      loadQueue();
    } catch (e) {
      $("#composer-error").textContent = e.message;
    }
  });
  $("#add-note").addEventListener("click", async () => {
    const text = $("#reply-text").value.trim();
    if (!text) return;
    try {
      await api("/api/v1/console/tickets/" + state.current + "/note", { method: "POST", body: { text } });
      clearSent(text);
      await openTicket(state.current);
    } catch (e) {
      $("#composer-error").textContent = e.message;
    }
  });
  start();
})();
