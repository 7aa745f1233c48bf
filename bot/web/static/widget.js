/* Nightdesk storefront chat widget: the snippet a seller pastes into any shop page.
 *
 *   <script src="https://HOST/widget.js" data-nightdesk-url="https://HOST"
 *           data-title="Chat with us" data-color="#0f766e" defer></script>
 *
 * It lives in a Shadow DOM (the shop's CSS cannot reach it), keeps its session token in
 * localStorage (a returning shopper sees the history), talks over a WebSocket that reconnects
 * on its own and resyncs missed messages, falls back to long-polling when WebSockets are
 * blocked, and keeps an outbox so nothing typed while offline is lost or sent twice.
 * Every text is rendered with textContent: a message containing HTML shows as text.
 */
(function () {
  "use strict";

  var script = document.currentScript ||
    document.querySelector("script[data-nightdesk-url]") ||
    document.querySelector("script[src*='widget.js']");
  if (!script || window.__nightdeskWidget) { return; }

  var base = (script.getAttribute("data-nightdesk-url") || new URL(script.src, location.href).origin)
    .replace(/\/+$/, "");
  var options = {
    title: script.getAttribute("data-title") || "Chat with us",
    subtitle: script.getAttribute("data-subtitle") || "We usually answer in a few seconds",
    color: script.getAttribute("data-color") || "#0f766e",
    transport: script.getAttribute("data-transport") || "auto", // auto | websocket | poll
    open: script.getAttribute("data-open") === "true"
  };
  var STORE_KEY = "nightdesk:" + base;
  var MIN_TYPING_MS = 700; // a typing dot that flashes for 50 ms reads as a glitch
  var HEARTBEAT_TIMEOUT_MS = 45000;

  // ---------------------------------------------------------------- persistent state
  function loadStored() {
    try { return JSON.parse(localStorage.getItem(STORE_KEY) || "{}") || {}; } catch (e) { return {}; }
  }
  function saveStored() {
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify({ token: state.token, outbox: state.outbox }));
    } catch (e) { /* private mode: the session simply does not survive a reload */ }
  }
  var stored = loadStored();
  var state = {
    token: stored.token || null,
    conversationId: null,
    outbox: Array.isArray(stored.outbox) ? stored.outbox : [], // [{client_id, text, payload}]
    lastId: 0,
    lastOutId: 0,
    seen: {},                  // message id -> element
    pending: {},               // client_id -> element
    maxLength: 2000,
    offline: false,
    emailSaved: false,
    started: false,
    mode: options.transport === "poll" ? "poll" : "websocket",
    ws: null,
    wsOpen: false,
    wsFailures: 0,
    httpVerified: false,
    attempt: 0,
    reconnectTimer: null,
    heartbeatTimer: null,
    pollAbort: null,
    typingSince: 0,
    typingTimer: null,
    receipted: { delivered: 0, read: 0 },
    receiptTimer: null
  };

  // ---------------------------------------------------------------- DOM (Shadow root)
  var host = document.createElement("div");
  host.id = "nightdesk-widget";
  host.style.setProperty("--nd-accent", options.color);
  var root = host.attachShadow({ mode: "open" });

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  // A speech bubble drawn in SVG: emoji fonts are missing on many systems.
  function chatIcon() {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "28");
    svg.setAttribute("height", "28");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("class", "nd-launcher-icon");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
    path.setAttribute("fill", "currentColor");
    svg.appendChild(path);
    return svg;
  }

  var css = el("link", { rel: "stylesheet", href: base + "/widget.css" });
  var launcher = el("button", { type: "button", class: "nd-launcher", "aria-label": "Open chat",
    "aria-expanded": "false", "aria-controls": "nd-panel" });
  launcher.appendChild(chatIcon());
  var unreadBadge = el("span", { class: "nd-unread", hidden: "" }, "");
  launcher.appendChild(unreadBadge);

  var panel = el("section", { id: "nd-panel", class: "nd-panel", role: "dialog",
    "aria-label": options.title, hidden: "" });
  var header = el("header", { class: "nd-header" });
  var titles = el("div", { class: "nd-titles" });
  titles.appendChild(el("h2", { class: "nd-title" }, options.title));
  titles.appendChild(el("p", { class: "nd-subtitle" }, options.subtitle));
  header.appendChild(titles);
  var connection = el("span", { class: "nd-connection", role: "status", "aria-live": "polite" }, "");
  header.appendChild(connection);
  var closeBtn = el("button", { type: "button", class: "nd-close", "aria-label": "Close chat" }, "\u00D7");
  header.appendChild(closeBtn);

  var offlineBox = el("form", { class: "nd-offline", hidden: "", novalidate: "",
    "aria-label": "Leave your email" });
  offlineBox.appendChild(el("p", { class: "nd-offline-text" },
    "Our team is offline right now. Leave your email and we will answer you there; " +
    "the assistant can still help in the meantime."));
  var emailRow = el("div", { class: "nd-row" });
  var emailInput = el("input", { type: "email", class: "nd-email", name: "email", autocomplete: "email",
    placeholder: "you@example.com", "aria-label": "Your email address", required: "" });
  var emailBtn = el("button", { type: "submit", class: "nd-email-send" }, "Save");
  emailRow.appendChild(emailInput);
  emailRow.appendChild(emailBtn);
  offlineBox.appendChild(emailRow);
  var emailNotice = el("p", { class: "nd-email-notice", role: "status", "aria-live": "polite" }, "");
  offlineBox.appendChild(emailNotice);

  var log = el("ol", { class: "nd-log", role: "log", "aria-live": "polite", "aria-label": "Messages",
    tabindex: "0" });
  var typing = el("div", { class: "nd-typing", hidden: "", role: "status", "aria-label": "Assistant is typing" });
  typing.appendChild(el("span", { "aria-hidden": "true" }, "\u2026"));
  var quickReplies = el("div", { class: "nd-quick-replies", role: "group", "aria-label": "Suggested replies",
    hidden: "" });

  var form = el("form", { class: "nd-compose", "aria-label": "Write a message" });
  var input = el("textarea", { class: "nd-input", name: "message", rows: "2",
    placeholder: "Type your message\u2026", "aria-label": "Your message", "aria-describedby": "nd-counter nd-notice" });
  var sendBtn = el("button", { type: "submit", class: "nd-send", "aria-label": "Send message" }, "Send");
  var counter = el("span", { id: "nd-counter", class: "nd-counter", "aria-live": "off" }, "");
  var notice = el("p", { id: "nd-notice", class: "nd-notice", role: "alert", hidden: "" }, "");
  var composeRow = el("div", { class: "nd-row" });
  composeRow.appendChild(input);
  composeRow.appendChild(sendBtn);
  form.appendChild(composeRow);
  var footRow = el("div", { class: "nd-foot" });
  footRow.appendChild(notice);
  footRow.appendChild(counter);
  form.appendChild(footRow);

  panel.appendChild(header);
  panel.appendChild(offlineBox);
  panel.appendChild(log);
  panel.appendChild(typing);
  panel.appendChild(quickReplies);
  panel.appendChild(form);
  root.appendChild(css);
  root.appendChild(panel);
  root.appendChild(launcher);

  // ---------------------------------------------------------------- rendering
  var URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

  // Plain text with safe links: only http(s) URLs become anchors, all text goes through textContent.
  function renderText(node, text) {
    text = String(text || "");
    var last = 0;
    var match;
    URL_RE.lastIndex = 0;
    while ((match = URL_RE.exec(text)) !== null) {
      if (match.index > last) { node.appendChild(document.createTextNode(text.slice(last, match.index))); }
      var a = el("a", { href: match[0], target: "_blank", rel: "noopener noreferrer nofollow" }, match[0]);
      node.appendChild(a);
      last = match.index + match[0].length;
    }
    if (last < text.length) { node.appendChild(document.createTextNode(text.slice(last))); }
  }

  // The shop's answers are Markdown (knowledge-base articles): a small subset is shown as such, built from
  // DOM nodes with textContent like everything else. Paragraphs, "-"/"*" and "1." lists, "#" headings,
  // tables, **bold**, *italic*, [links](https://...) and bare http(s) URLs; anything else stays text.
  var INLINE_RE = /\*\*(?=\S)([^*]+?)\*\*|(^|[^*\w])\*(?=[^\s*])([^*\n]+?)\*(?![*\w])|\[([^\]\n]+)\]\(([^)\s]+)\)/g;

  function renderInline(node, text) {
    var last = 0;
    var match;
    INLINE_RE.lastIndex = 0;
    while ((match = INLINE_RE.exec(text)) !== null) {
      var start = match.index + (match[2] !== undefined ? match[2].length : 0);
      if (start > last) { renderText(node, text.slice(last, start)); }
      if (match[1] !== undefined) {
        node.appendChild(el("strong", null, match[1]));
      } else if (match[3] !== undefined) {
        node.appendChild(el("em", null, match[3]));
      } else {
        var url = safeUrl(match[5]);
        if (url) {
          node.appendChild(el("a", { href: url, target: "_blank", rel: "noopener noreferrer nofollow" }, match[4]));
        } else {
          renderText(node, match[0]);
        }
      }
      last = match.index + match[0].length;
    }
    if (last < text.length) { renderText(node, text.slice(last)); }
  }

  function cells(line) {
    return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map(function (c) { return c.trim(); });
  }

  var TABLE_RULE = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;
  var LIST_ITEM = /^\s*(?:[-*]|(\d+)[.)])\s+(.*)$/;

  function renderRich(node, text) {
    var lines = String(text || "").split("\n");
    var paragraph = [];
    function flush() {
      if (!paragraph.length) { return; }
      var p = el("p", { class: "nd-p" });
      paragraph.forEach(function (line, i) {
        if (i) { p.appendChild(el("br")); }
        renderInline(p, line);
      });
      node.appendChild(p);
      paragraph = [];
    }
    var i = 0;
    while (i < lines.length) {
      var line = lines[i];
      var heading = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
      if (/^\s*\|.*\|\s*$/.test(line) && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1])) {
        flush();
        var table = el("table", { class: "nd-table" });
        var head = el("tr");
        cells(line).forEach(function (c) { var th = el("th"); renderInline(th, c); head.appendChild(th); });
        table.appendChild(el("thead")).appendChild(head);
        var body = table.appendChild(el("tbody"));
        i += 2;
        while (i < lines.length && /^\s*\|.*\|\s*$/.test(lines[i])) {
          var tr = el("tr");
          cells(lines[i]).forEach(function (c) { var td = el("td"); renderInline(td, c); tr.appendChild(td); });
          body.appendChild(tr);
          i += 1;
        }
        node.appendChild(el("div", { class: "nd-table-wrap" })).appendChild(table);
        continue;
      }
      var item = LIST_ITEM.exec(line);
      if (item) {
        flush();
        var ordered = item[1] !== undefined;
        var list = el(ordered ? "ol" : "ul", { class: "nd-list" });
        if (ordered && item[1] !== "1") { list.setAttribute("start", item[1]); }
        while (i < lines.length && (item = LIST_ITEM.exec(lines[i])) && (item[1] !== undefined) === ordered) {
          var li = el("li");
          renderInline(li, item[2]);
          list.appendChild(li);
          i += 1;
        }
        node.appendChild(list);
        continue;
      }
      if (heading) {
        flush();
        var h = el("p", { class: "nd-p nd-heading" });
        h.appendChild(el("strong", null, heading[1]));
        node.appendChild(h);
      } else if (line.trim() === "") {
        flush();
      } else {
        paragraph.push(line);
      }
      i += 1;
    }
    flush();
  }

  // Only http(s) links (or paths on the Nightdesk server): never javascript: or data: URLs.
  function safeUrl(url) {
    if (typeof url !== "string" || !url) { return null; }
    if (url.charAt(0) === "/" && url.charAt(1) !== "/") { return base + url; }
    return /^https?:\/\//i.test(url) ? url : null;
  }

  function renderAttachments(bubble, attachments) {
    (Array.isArray(attachments) ? attachments : []).forEach(function (a) {
      var url = safeUrl(a && a.url);
      if (!url) { return; }
      var label = a.caption || a.filename || (a.kind === "image" ? "Image" : "Attachment");
      var box = el("div", { class: "nd-attachment" });
      if (a.kind === "image") {
        var img = el("img", { src: url, alt: label, loading: "lazy" });
        box.appendChild(img);
      }
      box.appendChild(el("a", { href: url, target: "_blank", rel: "noopener noreferrer nofollow" }, label));
      bubble.appendChild(box);
    });
  }

  function authorLabel(m) {
    if (m.direction === "in") { return "You"; }
    if (m.author && m.author.indexOf("agent:") === 0) { return "Agent"; }
    if (m.author === "system") { return "Notice"; }
    return "Assistant";
  }

  function timeLabel(iso) {
    if (!iso) { return ""; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return ""; }
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function messageNode(kind, authorText) {
    var li = el("li", { class: "nd-msg " + (kind === "in" ? "nd-mine" : "nd-theirs") });
    li.appendChild(el("span", { class: "nd-sr" }, authorText + ": "));
    li.appendChild(el("div", { class: "nd-bubble" }));
    li.appendChild(el("div", { class: "nd-meta" }));
    return li;
  }

  function fillMessage(li, m) {
    li.setAttribute("data-id", String(m.id));
    li.setAttribute("data-author", m.author || "");
    li.setAttribute("data-direction", m.direction || "");
    li.removeAttribute("data-pending");
    li.className = "nd-msg " + (m.direction === "in" ? "nd-mine" : "nd-theirs");
    li.firstChild.textContent = authorLabel(m) + ": ";
    var bubble = li.querySelector(".nd-bubble");
    bubble.textContent = "";
    // The shopper's own words stay exactly as typed; the shop's answers may be Markdown.
    if (m.direction === "in") { renderText(bubble, m.text); } else { renderRich(bubble, m.text); }
    renderAttachments(bubble, m.attachments);
    var meta = li.querySelector(".nd-meta");
    meta.textContent = timeLabel(m.created_at) + (m.direction === "in" && m.status === "failed" ? " \u00B7 not delivered" : "");
  }

  function scrollToEnd() { log.scrollTop = log.scrollHeight; }

  function showQuickReplies(m) {
    quickReplies.textContent = "";
    var items = (m && m.direction === "out" && Array.isArray(m.quick_replies)) ? m.quick_replies : [];
    if (!items.length) { quickReplies.hidden = true; return; }
    items.forEach(function (q) {
      var title = q.title || q.payload || "";
      var b = el("button", { type: "button", class: "nd-quick" }, title);
      b.addEventListener("click", function () {
        quickReplies.hidden = true;
        quickReplies.textContent = "";
        queueMessage(title, q.payload || null);
      });
      quickReplies.appendChild(b);
    });
    quickReplies.hidden = false;
  }

  // Adds or updates one stored message; a message id is never shown twice.
  function addMessage(m, opts) {
    if (!m || typeof m.id !== "number") { return; }
    if (m.id > state.lastId) { state.lastId = m.id; }
    var existing = state.seen[m.id];
    if (existing) { fillMessage(existing, m); return; }
    var li = null;
    if (opts && opts.clientId && state.pending[opts.clientId]) {
      li = state.pending[opts.clientId];
      delete state.pending[opts.clientId];
    } else if (m.direction === "in") {
      // Our own message echoed before its ack: adopt the pending bubble with the same text.
      var ids = Object.keys(state.pending);
      for (var i = 0; i < ids.length; i++) {
        var p = state.pending[ids[i]];
        if (p.getAttribute("data-text") === m.text && p.getAttribute("data-sent") === "1") {
          li = p; p.setAttribute("data-adopted", ids[i]); delete state.pending[ids[i]]; break;
        }
      }
    }
    if (!li) {
      li = messageNode(m.direction, authorLabel(m));
      insertInOrder(li, m.id);
    }
    fillMessage(li, m);
    state.seen[m.id] = li;
    if (m.direction === "out") {
      hideTyping(true);
      showQuickReplies(m);
      if (panel.hidden && !(opts && opts.history)) { bumpUnread(); }
      if (m.id > state.lastOutId) { state.lastOutId = m.id; }
      scheduleReceipt();
    }
    scrollToEnd();
  }

  // Tell the server which replies reached this browser, and which the shopper has actually seen.
  function scheduleReceipt() {
    clearTimeout(state.receiptTimer);
    state.receiptTimer = setTimeout(sendReceipt, 250);
  }
  function sendReceipt() {
    if (!state.token || !state.lastOutId) { return; }
    var status = (!panel.hidden && document.visibilityState !== "hidden") ? "read" : "delivered";
    if (state.receipted[status] >= state.lastOutId) { return; }
    var upTo = state.lastOutId;
    var sent = false;
    if (state.mode === "poll") {
      http("POST", "/api/v1/widget/receipt", { token: state.token, up_to: upTo, status: status })
        .then(function (r) { if (r.ok) { state.receipted[status] = upTo; } }, function () { /* next time */ });
      return;
    }
    sent = sendFrame({ type: "receipt", up_to: upTo, status: status });
    if (sent) {
      state.receipted[status] = upTo;
      if (status === "read") { state.receipted.delivered = Math.max(state.receipted.delivered, upTo); }
    }
  }
  document.addEventListener("visibilitychange", scheduleReceipt);

  // Stored messages stay in id order; pending (unsent) bubbles always stay last.
  function insertInOrder(li, id) {
    var children = log.children;
    for (var i = 0; i < children.length; i++) {
      var c = children[i];
      var cid = c.getAttribute("data-id");
      if (c.getAttribute("data-pending") === "1" || (cid && Number(cid) > id)) {
        log.insertBefore(li, c);
        return;
      }
    }
    log.appendChild(li);
  }

  function addPending(entry) {
    var li = messageNode("in", "You");
    li.setAttribute("data-pending", "1");
    li.setAttribute("data-client-id", entry.client_id);
    li.setAttribute("data-text", entry.text);
    renderText(li.querySelector(".nd-bubble"), entry.text);
    li.querySelector(".nd-meta").textContent = "Sending\u2026";
    log.appendChild(li);
    state.pending[entry.client_id] = li;
    scrollToEnd();
  }

  function settleAck(clientId, m) {
    removeFromOutbox(clientId);
    var pendingLi = state.pending[clientId];
    if (m && state.seen[m.id]) {
      // The message already arrived through resync or an echo: drop the placeholder.
      if (pendingLi && pendingLi !== state.seen[m.id]) { pendingLi.remove(); }
      delete state.pending[clientId];
      fillMessage(state.seen[m.id], m);
      return;
    }
    if (m) {
      if (pendingLi) { pendingLi.remove(); delete state.pending[clientId]; }
      var li = messageNode("in", "You");
      insertInOrder(li, m.id);
      fillMessage(li, m);
      state.seen[m.id] = li;
      if (m.id > state.lastId) { state.lastId = m.id; }
      scrollToEnd();
    }
  }

  function rejectPending(clientId, detail) {
    removeFromOutbox(clientId);
    var li = state.pending[clientId];
    if (li) {
      li.setAttribute("data-rejected", "1");
      li.removeAttribute("data-pending");
      li.querySelector(".nd-meta").textContent = "Not sent: " + detail;
      delete state.pending[clientId];
    }
  }

  var unread = 0;
  function bumpUnread() {
    unread += 1;
    unreadBadge.textContent = String(unread);
    unreadBadge.hidden = false;
    launcher.setAttribute("aria-label", "Open chat (" + unread + " new)");
  }

  function showTyping() {
    state.typingSince = Date.now();
    clearTimeout(state.typingTimer);
    typing.hidden = false;
    // Never stuck: if the "off" event is lost the dots go away on their own.
    state.typingTimer = setTimeout(function () { typing.hidden = true; }, 30000);
    scrollToEnd();
  }
  function hideTyping(now) {
    var shown = Date.now() - state.typingSince;
    clearTimeout(state.typingTimer);
    if (now || shown >= MIN_TYPING_MS) { typing.hidden = true; return; }
    state.typingTimer = setTimeout(function () { typing.hidden = true; }, MIN_TYPING_MS - shown);
  }

  function setNotice(text) {
    notice.textContent = text || "";
    notice.hidden = !text;
  }

  function setConnection(text) { connection.textContent = text; }

  // ---------------------------------------------------------------- compose + length limit
  function fmt(n) { try { return n.toLocaleString(); } catch (e) { return String(n); } }

  function updateCounter() {
    var n = input.value.length;
    counter.textContent = fmt(n) + " / " + fmt(state.maxLength);
    var over = n > state.maxLength;
    counter.classList.toggle("nd-over", over);
    input.setAttribute("aria-invalid", over ? "true" : "false");
    sendBtn.disabled = over;
    if (over) {
      setNotice("Your message is " + fmt(n) + " characters long; the limit is " + fmt(state.maxLength) +
        ". Please shorten it or send it in several parts.");
    } else if (notice.getAttribute("data-kind") !== "server") {
      setNotice("");
    }
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function queueMessage(text, payload) {
    var entry = { client_id: uuid(), text: text, payload: payload || null };
    state.outbox.push(entry);
    saveStored();
    addPending(entry);
    flushOutbox();
  }

  function removeFromOutbox(clientId) {
    state.outbox = state.outbox.filter(function (e) { return e.client_id !== clientId; });
    saveStored();
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    notice.removeAttribute("data-kind");
    if (!text) { setNotice("Type a message first."); return; }
    if (text.length > state.maxLength) { updateCounter(); return; }
    setNotice("");
    input.value = "";
    updateCounter();
    queueMessage(text, null);
    input.focus();
  });
  input.addEventListener("input", function () { notice.removeAttribute("data-kind"); updateCounter(); });
  input.addEventListener("keydown", function (ev) {
    // Enter sends, Shift+Enter makes a new line (what chat users expect).
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      if (typeof form.requestSubmit === "function") { form.requestSubmit(); } else { sendBtn.click(); }
    }
  });

  // ---------------------------------------------------------------- open / close
  function openPanel() {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    unread = 0;
    unreadBadge.hidden = true;
    launcher.setAttribute("aria-label", "Open chat");
    start();
    scrollToEnd();
    scheduleReceipt();
    input.focus();
  }
  function closePanel() {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }
  launcher.addEventListener("click", function () { if (panel.hidden) { openPanel(); } else { closePanel(); } });
  closeBtn.addEventListener("click", closePanel);
  panel.addEventListener("keydown", function (ev) { if (ev.key === "Escape") { closePanel(); } });

  // ---------------------------------------------------------------- offline email
  offlineBox.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var email = emailInput.value.trim();
    if (!email) { emailNotice.textContent = "Please type your email address."; return; }
    emailBtn.disabled = true;
    http("POST", "/api/v1/widget/email", { token: state.token, email: email }).then(function (r) {
      emailBtn.disabled = false;
      if (r.ok) {
        state.emailSaved = true;
        emailNotice.textContent = "Thanks! We will reply to " + r.body.email + " as soon as we are back.";
        emailInput.setAttribute("aria-invalid", "false");
        emailRow.hidden = true;
      } else {
        emailInput.setAttribute("aria-invalid", "true");
        emailNotice.textContent = errorText(r, "We could not save your email. Please try again.");
      }
    }, function () {
      emailBtn.disabled = false;
      emailNotice.textContent = "We could not reach the server. Please try again in a moment.";
    });
  });

  function errorText(r, fallback) {
    var d = r.body && r.body.detail;
    if (typeof d === "string") { return d; }
    if (Array.isArray(d) && d.length && d[0].msg) { return d[0].msg; }
    return fallback;
  }

  // ---------------------------------------------------------------- HTTP helper
  function http(method, path, body, signal) {
    var init = { method: method, headers: { "Accept": "application/json" }, signal: signal };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(base + path, init).then(function (res) {
      return res.text().then(function (t) {
        var parsed = null;
        try { parsed = t ? JSON.parse(t) : null; } catch (e) { parsed = null; }
        return { ok: res.ok, status: res.status, body: parsed };
      });
    });
  }

  // ---------------------------------------------------------------- session
  function browserLocale() { return navigator.language || (navigator.languages || [])[0] || "en"; }
  function browserTimezone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }

  function start() {
    if (state.started) { return; }
    state.started = true;
    // Outbox entries from a previous page (typed while offline, then reloaded) show as pending.
    state.outbox.forEach(addPending);
    updateCounter();
    openSession();
  }

  function openSession() {
    setConnection("Connecting\u2026");
    http("POST", "/api/v1/widget/session", {
      session_token: state.token, locale: browserLocale(), timezone: browserTimezone()
    }).then(function (r) {
      if (!r.ok) { throw new Error("session " + r.status); }
      var s = r.body;
      state.token = s.session_token;
      state.conversationId = s.conversation_id;
      state.maxLength = s.max_length || state.maxLength;
      saveStored();
      (s.history || []).forEach(function (m) { addMessage(m, { history: true }); });
      setOffline(!!s.offline);
      updateCounter();
      connect();
    }).catch(function () {
      setConnection("Offline \u2013 retrying\u2026");
      scheduleRetry(openSession);
    });
  }

  function setOffline(offline) {
    state.offline = offline;
    offlineBox.hidden = !offline || state.emailSaved;
    host.setAttribute("data-offline", offline ? "true" : "false");
  }

  // Exponential backoff with full jitter, capped, so a restarted server is not stampeded.
  function backoffDelay() {
    var cap = Math.min(15000, 500 * Math.pow(2, state.attempt));
    state.attempt += 1;
    return Math.round(cap / 2 + Math.random() * cap / 2);
  }
  function scheduleRetry(fn) {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = setTimeout(fn, backoffDelay());
  }

  function connect() {
    if (state.mode === "poll") { startPolling(); return; }
    openWebSocket();
  }

  // ---------------------------------------------------------------- WebSocket transport
  function openWebSocket() {
    var url = base.replace(/^http/, "ws") + "/ws/widget?token=" + encodeURIComponent(state.token) +
      "&after=" + state.lastId;
    var ws;
    try { ws = new WebSocket(url); } catch (e) { onSocketFailed(false); return; }
    state.ws = ws;
    var opened = false;
    ws.onopen = function () { armHeartbeat(); };
    ws.onmessage = function (ev) {
      armHeartbeat();
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      if (data.type === "ready") {
        // Only the server's "ready" proves the socket works end to end (a proxy may accept and drop it).
        opened = true;
        state.httpVerified = false;
        state.wsOpen = true;
        state.wsFailures = 0;
        state.attempt = 0;
        setConnection("");
        host.setAttribute("data-connected", "true");
        host.setAttribute("data-transport", "websocket");
        if (typeof data.offline === "boolean") { setOffline(data.offline); }
        flushOutbox();
        scheduleReceipt();
        return;
      }
      handleEvent(data);
    };
    ws.onclose = function (ev) {
      if (state.ws !== ws) { return; }
      state.ws = null;
      state.wsOpen = false;
      host.setAttribute("data-connected", "false");
      clearTimeout(state.heartbeatTimer);
      markSentAsUnsent();
      if (ev.code === 4401) {
        // The server no longer knows our token (e.g. its data was reset): start a new session.
        state.token = null; saveStored(); openSession(); return;
      }
      onSocketFailed(opened);
    };
    ws.onerror = function () { /* onclose follows and decides */ };
  }

  function onSocketFailed(hadOpened) {
    if (!hadOpened) { state.wsFailures += 1; }
    setConnection("Reconnecting\u2026");
    if (!hadOpened && state.wsFailures >= 3 && options.transport !== "websocket") {
      if (state.httpVerified) {
        // Plain HTTP worked right before this WebSocket failed: a proxy blocks them. Long-poll instead.
        state.httpVerified = false;
        state.mode = "poll";
        state.attempt = 0;
        startPolling();
        return;
      }
      // Is the server down (keep retrying) or are WebSockets blocked? Check HTTP, then try once more.
      http("POST", "/api/v1/widget/session", {
        session_token: state.token, locale: browserLocale(), timezone: browserTimezone()
      }).then(function (r) {
        if (r.ok) { state.httpVerified = true; openWebSocket(); } else { scheduleRetry(connect); }
      }, function () { state.wsFailures = 0; scheduleRetry(connect); });
      return;
    }
    scheduleRetry(connect);
  }

  function armHeartbeat() {
    clearTimeout(state.heartbeatTimer);
    state.heartbeatTimer = setTimeout(function () {
      // No data (not even a ping) for too long: the connection is dead even if the browser says otherwise.
      if (state.ws) { try { state.ws.close(); } catch (e) { /* ignore */ } }
    }, HEARTBEAT_TIMEOUT_MS);
  }

  function handleEvent(data) {
    switch (data.type) {
      case "message":
        // The server only forwards this shopper's conversations (a closed one is followed by a new one).
        if (data.message) { addMessage(data.message); }
        break;
      case "ack":
        if (data.message) { state.conversationId = data.message.conversation_id; }
        settleAck(data.client_id, data.message);
        break;
      case "error":
        if (data.client_id) { rejectPending(data.client_id, data.detail || "rejected"); }
        notice.setAttribute("data-kind", "server");
        setNotice(data.detail || "Your message could not be sent.");
        break;
      case "typing":
        if (data.on) { showTyping(); } else { hideTyping(false); }
        break;
      case "status":
        if (typeof data.offline === "boolean") { setOffline(data.offline); }
        if (data.message && state.seen[data.message.id]) { fillMessage(state.seen[data.message.id], data.message); }
        break;
      case "ping":
        sendFrame({ type: "pong" });
        break;
      default:
        break;
    }
  }

  function sendFrame(obj) {
    if (state.ws && state.wsOpen) {
      try { state.ws.send(JSON.stringify(obj)); return true; } catch (e) { return false; }
    }
    return false;
  }

  // A message sent on a socket that then died has no ack: send it again (same client_id) later.
  function markSentAsUnsent() {
    Object.keys(state.pending).forEach(function (cid) {
      var li = state.pending[cid];
      li.setAttribute("data-sent", "0");
      li.querySelector(".nd-meta").textContent = "Waiting for connection\u2026";
    });
  }

  function flushOutbox() {
    if (!state.token) { return; }
    state.outbox.forEach(function (entry) {
      var li = state.pending[entry.client_id];
      if (li && li.getAttribute("data-sent") === "1") { return; }
      if (state.mode === "poll") { postPolled(entry); return; }
      var frame = { type: "message", client_id: entry.client_id, text: entry.text };
      if (entry.payload) { frame.payload = entry.payload; }
      if (sendFrame(frame) && li) {
        li.setAttribute("data-sent", "1");
        li.querySelector(".nd-meta").textContent = "Sending\u2026";
      }
    });
  }

  // ---------------------------------------------------------------- long-poll transport
  var polling = false;
  function startPolling() {
    if (polling) { return; }
    polling = true;
    host.setAttribute("data-transport", "poll");
    flushOutbox();
    pollLoop();
  }

  function pollLoop() {
    var ctrl = window.AbortController ? new AbortController() : null;
    state.pollAbort = ctrl;
    http("GET", "/api/v1/widget/messages?token=" + encodeURIComponent(state.token) + "&after=" + state.lastId +
      "&wait=25", undefined, ctrl ? ctrl.signal : undefined).then(function (r) {
      if (!r.ok) { throw new Error("poll " + r.status); }
      state.attempt = 0;
      setConnection("");
      host.setAttribute("data-connected", "true");
      var b = r.body || {};
      (b.messages || []).forEach(function (m) { addMessage(m); });
      if (typeof b.typing === "boolean") { if (b.typing) { showTyping(); } else { hideTyping(false); } }
      if (typeof b.offline === "boolean") { setOffline(b.offline); }
      flushOutbox();
      pollLoop();
    }).catch(function () {
      host.setAttribute("data-connected", "false");
      setConnection("Reconnecting\u2026");
      markSentAsUnsent();
      scheduleRetry(pollLoop);
    });
  }

  function postPolled(entry) {
    var li = state.pending[entry.client_id];
    if (li) { li.setAttribute("data-sent", "1"); }
    http("POST", "/api/v1/widget/messages", {
      token: state.token, client_id: entry.client_id, text: entry.text, payload: entry.payload
    }).then(function (r) {
      if (r.ok) { settleAck(entry.client_id, r.body.message); return; }
      if (r.status >= 400 && r.status < 500) {
        rejectPending(entry.client_id, errorText(r, "rejected"));
        notice.setAttribute("data-kind", "server");
        setNotice(errorText(r, "Your message could not be sent."));
        return;
      }
      if (li) { li.setAttribute("data-sent", "0"); }
    }, function () { if (li) { li.setAttribute("data-sent", "0"); } });
  }

  // ---------------------------------------------------------------- boot
  function mount() {
    document.body.appendChild(host);
    updateCounter();
    // A returning shopper (token or unsent messages stored) reconnects at once to get new replies.
    if (state.token || state.outbox.length) { start(); }
    if (options.open) { openPanel(); }
  }
  window.__nightdeskWidget = { open: openPanel, close: closePanel };
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();
