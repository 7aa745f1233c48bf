// The KB editor: list/search articles, edit drafts with preview, publish, history/diff/rollback,
// "try it" search and the unanswered-question groups. Talks only to /api/v1/kb/* and /api/v1/auth/*.
(() => {
  "use strict";
  const $ = (sel) => document.querySelector(sel);
  const state = { me: null, list: null, article: null, locale: null, filter: "" };
  const LOCALES = ["en", "de", "es", "fr", "it", "ja", "zh", "pt", "nl"];
  // Why the bot did not answer (knowledge_base/service.py UNANSWERED_REASONS).
  const REASONS = {
    fallback: "fell back", clarify: "asked to clarify", low_confidence: "handed over, unsure",
    unanswered_part: "one of several questions",
  };

  async function api(path, opts = {}) {
    const init = { method: opts.method || "GET", headers: {}, credentials: "same-origin" };
    if (opts.body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    const response = await fetch(path, init);
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      let detail = data.detail;
      if (detail && typeof detail === "object") detail = detail.message || JSON.stringify(detail);
      const err = new Error(detail || `request failed (${response.status})`);
      err.status = response.status;
      throw err;
    }
    return data;
  }

  function toast(text) {
    const t = $("#toast");
    t.textContent = text;
    t.style.display = "block";
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.style.display = "none"; }, 3500);
  }

  function esc(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  // Small Markdown renderer for the preview: headings, lists, tables, bold/italic/code, links, paragraphs.
  function inline(text) {
    return esc(text)
      .replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/\*([^*]+)\*/g, "<em>$1</em>")
      .replace(/\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)/g, '<a href="$2" rel="noopener" target="_blank">$1</a>');
  }

  function markdown(src) {
    const lines = String(src || "").split(/\r?\n/);
    const out = [];
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      if (!line.trim()) { i++; continue; }
      const heading = line.match(/^(#{1,6})\s+(.*)$/);
      if (heading) { out.push(`<h${heading[1].length}>${inline(heading[2])}</h${heading[1].length}>`); i++; continue; }
      if (line.trim().startsWith("|")) {
        const rows = [];
        while (i < lines.length && lines[i].trim().startsWith("|")) { rows.push(lines[i].trim()); i++; }
        const cells = (row) => row.replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
        const body = rows.filter((r) => !/^\|[\s|:-]+\|$/.test(r));
        const [head, ...rest] = body;
        out.push("<table><thead><tr>" + cells(head).map((c) => `<th>${inline(c)}</th>`).join("") + "</tr></thead><tbody>" +
          rest.map((r) => "<tr>" + cells(r).map((c) => `<td>${inline(c)}</td>`).join("") + "</tr>").join("") + "</tbody></table>");
        continue;
      }
      if (/^\s*([-*]|\d+\.)\s+/.test(line)) {
        const ordered = /^\s*\d+\./.test(line);
        const items = [];
        while (i < lines.length && /^\s*([-*]|\d+\.)\s+/.test(lines[i])) {
          items.push(lines[i].replace(/^\s*([-*]|\d+\.)\s+/, "")); i++;
        }
        const tag = ordered ? "ol" : "ul";
        out.push(`<${tag}>` + items.map((it) => `<li>${inline(it)}</li>`).join("") + `</${tag}>`);
        continue;
      }
      const para = [];
      while (i < lines.length && lines[i].trim() && !/^(#{1,6}\s|\s*\||\s*([-*]|\d+\.)\s)/.test(lines[i])) { para.push(lines[i]); i++; }
      out.push(`<p>${inline(para.join(" "))}</p>`);
    }
    return out.join("\n");
  }

  // ------------------------------------------------------------------ login
  async function boot() {
    try {
      state.me = await api("/api/v1/auth/me");
    } catch (e) {
      $("#login").hidden = false;
      $("#app").hidden = true;
      return;
    }
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#logout").hidden = false;
    $("#who").textContent = `${state.me.display_name} (${state.me.roles.join(", ")})`;
    const canEdit = state.me.roles.includes("content_owner") || state.me.roles.includes("admin");
    for (const id of ["#save-draft", "#publish", "#discard", "#new-article", "#add-locale-btn", "#archive"]) $(id).disabled = !canEdit;
    await loadList();
  }

  $("#login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    try {
      await api("/api/v1/auth/login", { method: "POST", body: { login: form.get("login"), password: form.get("password") } });
      $("#login-error").textContent = "";
      await boot();
    } catch (e) {
      $("#login-error").textContent = e.message;
    }
  });
  $("#logout").addEventListener("click", async () => {
    await api("/api/v1/auth/logout", { method: "POST" }).catch(() => null);
    location.reload();
  });

  // ------------------------------------------------------------------ tabs
  function showTab(name) {
    for (const tab of ["articles", "tryit", "gaps"]) {
      $(`#view-${tab}`).hidden = tab !== name;
      $(`#tab-${tab}`).setAttribute("aria-pressed", String(tab === name));
    }
    if (name === "gaps") loadGroups();
  }
  $("#tab-articles").addEventListener("click", () => showTab("articles"));
  $("#tab-tryit").addEventListener("click", () => showTab("tryit"));
  $("#tab-gaps").addEventListener("click", () => showTab("gaps"));

  // ------------------------------------------------------------------ article list
  async function loadList() {
    state.list = await api("/api/v1/kb/articles");
    $("#kbversion").textContent = `KB version ${state.list.kb_version}`;
    renderList();
    const select = $("#try-locale");
    if (select.options.length === 1) {
      for (const loc of LOCALES) select.add(new Option(loc, loc));
    }
  }

  function renderList() {
    const needle = state.filter.trim().toLowerCase();
    const box = $("#articles");
    box.innerHTML = "";
    for (const art of state.list.articles) {
      if (needle && !(art.article_id.includes(needle) || art.title.toLowerCase().includes(needle) ||
                      art.tags.some((t) => t.toLowerCase().includes(needle)))) continue;
      const row = document.createElement("div");
      row.className = "article" + (state.article && state.article.article_id === art.article_id ? " active" : "");
      row.setAttribute("role", "listitem");
      row.dataset.id = art.article_id;
      const badges = Object.entries(art.translations).map(([loc, t]) =>
        `<span class="badge ${t.state}" title="${loc}: ${t.state}${t.has_draft ? " (draft)" : ""}">${loc}${t.state === "outdated" ? " outdated" : ""}${t.state === "missing" ? " missing" : ""}${t.has_draft ? "*" : ""}</span>`).join("");
      row.innerHTML = `<div>${esc(art.title)}</div><div class="id">${esc(art.article_id)}</div><div>${badges}</div>`;
      row.addEventListener("click", () => openArticle(art.article_id));
      box.appendChild(row);
    }
  }
  $("#filter").addEventListener("input", (ev) => { state.filter = ev.target.value; renderList(); });

  $("#new-article").addEventListener("click", async () => {
    const id = (prompt("Id of the new article (lowercase, e.g. gift-wrapping)") || "").trim();
    if (!id) return;
    const locale = state.list ? state.list.source_locale : "en";
    try {
      await api(`/api/v1/kb/articles/${encodeURIComponent(id)}/${locale}/draft`, { method: "PUT",
        body: { title: id.replace(/-/g, " "), body: "(write the answer)", questions: [], tags: [] } });
      await loadList();
      await openArticle(id, locale);
    } catch (e) { toast(e.message); }
  });

  // ------------------------------------------------------------------ one article
  async function openArticle(id, locale) {
    state.article = await api(`/api/v1/kb/articles/${encodeURIComponent(id)}`);
    const locales = Object.keys(state.article.locales);
    const chosen = locale || state.locale;
    state.locale = locales.includes(chosen) ? chosen : state.article.source_locale;
    $("#empty-editor").hidden = true;
    $("#editor").hidden = false;
    $("#article-id").textContent = id;
    renderLocales();
    fillForm();
    renderList();
    await loadHistory();
  }

  function renderLocales() {
    const box = $("#locales");
    box.innerHTML = "";
    for (const [loc, info] of Object.entries(state.article.locales)) {
      const card = document.createElement("div");
      card.className = "locale" + (loc === state.locale ? " selected" : "");
      card.dataset.locale = loc;
      const pub = info.published;
      card.innerHTML = `<div><strong>${loc}</strong> <span class="badge ${info.state}">${info.state}</span>` +
        `${info.draft ? ' <span class="badge outdated">draft</span>' : ""}</div>` +
        `<div>${pub ? esc(pub.title) : '<span class="muted">no published version</span>'}</div>` +
        `<div class="muted">${pub ? `v${pub.version} by ${esc(pub.author)}` : ""}</div>`;
      card.addEventListener("click", async () => { state.locale = loc; renderLocales(); fillForm(); await loadHistory(); });
      box.appendChild(card);
    }
    const add = $("#add-locale");
    add.innerHTML = "";
    for (const loc of LOCALES) if (!state.article.locales[loc] || state.article.locales[loc].state === "missing") add.add(new Option(loc, loc));
  }

  function fillForm() {
    const info = state.article.locales[state.locale] || {};
    const src = info.draft || info.published || { title: "", body: "", questions: [], tags: [] };
    $("#edit-locale").textContent = state.locale;
    $("#edit-state").textContent = info.draft ? "(editing the draft; the bot still serves the published version)" :
      (info.state === "outdated" ? "(outdated: the source changed after this translation)" : "");
    $("#title").value = src.title;
    $("#tags").value = (src.tags || []).join(", ");
    $("#questions").value = (src.questions || []).join("\n");
    $("#body").value = src.body;
    $("#preview").innerHTML = markdown(src.body);
    const source = state.article.locales[state.article.source_locale];
    const showSource = state.locale !== state.article.source_locale && source && source.published;
    $("#source-side").hidden = !showSource;
    if (showSource) {
      $("#source-locale").textContent = state.article.source_locale;
      $("#source-preview").innerHTML = `<h3>${esc(source.published.title)}</h3>` + markdown(source.published.body);
    }
    $("#editor-status").textContent = "";
  }
  $("#body").addEventListener("input", () => { $("#preview").innerHTML = markdown($("#body").value); });

  $("#add-locale-btn").addEventListener("click", async () => {
    const loc = $("#add-locale").value;
    if (!loc || !state.article) return;
    const source = state.article.locales[state.article.source_locale];
    const base = (source && (source.draft || source.published)) || { title: "", body: "" };
    state.article.locales[loc] = { state: "missing", published: null,
      draft: { title: base.title, body: base.body, questions: [], tags: base.tags || [] } };
    state.locale = loc;
    renderLocales();
    fillForm();
    $("#editor-status").textContent = "Translate the text, then save the draft.";
  });

  function formBody() {
    return {
      title: $("#title").value.trim(),
      body: $("#body").value,
      questions: $("#questions").value.split("\n").map((q) => q.trim()).filter(Boolean),
      tags: $("#tags").value.split(",").map((t) => t.trim()).filter(Boolean),
    };
  }
  const base = () => `/api/v1/kb/articles/${encodeURIComponent(state.article.article_id)}/${state.locale}`;

  async function saveDraft() {
    await api(`${base()}/draft`, { method: "PUT", body: formBody() });
  }
  $("#save-draft").addEventListener("click", async () => {
    try {
      await saveDraft();
      $("#editor-status").textContent = "Draft saved (not live yet).";
      await openArticle(state.article.article_id, state.locale);
      $("#editor-status").textContent = "Draft saved (not live yet).";
    } catch (e) { $("#editor-status").textContent = e.message; }
  });
  $("#publish").addEventListener("click", async () => {
    try {
      $("#editor-status").textContent = "Publishing…";
      await saveDraft();
      const v = await api(`${base()}/publish`, { method: "POST", body: { note: "" } });
      await loadList();
      await openArticle(state.article.article_id, state.locale);
      $("#editor-status").textContent = `Published version ${v.version}; the bot answers with it now.`;
    } catch (e) { $("#editor-status").textContent = e.message; }
  });
  $("#discard").addEventListener("click", async () => {
    try {
      await api(`${base()}/draft`, { method: "DELETE" });
      await openArticle(state.article.article_id, state.locale);
      $("#editor-status").textContent = "Draft discarded.";
    } catch (e) { $("#editor-status").textContent = e.message; }
  });

  $("#archive").addEventListener("click", async () => {
    const id = state.article.article_id;
    if (!confirm(`Archive '${id}'? The bot stops answering with it in every language; its history is kept.`)) return;
    try {
      const done = await api(`/api/v1/kb/articles/${encodeURIComponent(id)}/archive`, { method: "POST", body: { archived: true } });
      state.article = null;
      $("#editor").hidden = true;
      $("#empty-editor").hidden = false;
      await loadList();
      toast(`'${id}' archived (KB version ${done.serving_kb_version}); bring it back with nightdesk kb archive ${id} --restore`);
    } catch (e) { toast(e.message); }
  });

  async function loadHistory() {
    const body = $("#history");
    body.innerHTML = "";
    $("#diff").hidden = true;
    const info = state.article.locales[state.locale];
    if (!info || !info.published) {
      body.innerHTML = '<tr><td class="muted">Not published yet.</td></tr>';
      return;
    }
    const data = await api(`${base()}/versions`);
    for (const v of data.versions) {
      const tr = document.createElement("tr");
      tr.dataset.version = v.version;
      tr.innerHTML = `<td>v${v.version}</td><td>${esc(v.author)}</td><td>${new Date(v.created_at).toLocaleString()}</td>` +
        `<td>${esc(v.note || "")}</td><td class="row"></td>`;
      const cell = tr.lastElementChild;
      if (v.version > 1) {
        const d = document.createElement("button");
        d.textContent = `Diff v${v.version - 1}→v${v.version}`;
        d.addEventListener("click", () => showDiff(v.version - 1, v.version));
        cell.appendChild(d);
      }
      if (v.version !== data.versions[0].version) {
        const r = document.createElement("button");
        r.textContent = `Roll back to v${v.version}`;
        r.disabled = $("#publish").disabled;
        r.addEventListener("click", async () => {
          try {
            const restored = await api(`${base()}/rollback`, { method: "POST", body: { version: v.version } });
            await loadList();
            await openArticle(state.article.article_id, state.locale);
            $("#editor-status").textContent = `Rolled back: version ${restored.version} is a copy of v${v.version}.`;
          } catch (e) { toast(e.message); }
        });
        cell.appendChild(r);
      }
      body.appendChild(tr);
    }
  }

  async function showDiff(from, to) {
    const data = await api(`${base()}/diff?from=${from}&to=${to}`);
    const pre = $("#diff");
    pre.innerHTML = data.diff.split("\n").map((line) => {
      const cls = line.startsWith("+") && !line.startsWith("+++") ? "add" : (line.startsWith("-") && !line.startsWith("---") ? "del" : "");
      return `<span class="${cls}">${esc(line)}</span>`;
    }).join("\n");
    pre.hidden = false;
  }

  // ------------------------------------------------------------------ try it
  async function tryIt() {
    const query = $("#try-query").value.trim();
    if (!query) return;
    const box = $("#try-result");
    box.textContent = "Searching…";
    try {
      const locale = $("#try-locale").value || null;
      const r = await api("/api/v1/kb/search", { method: "POST", body: { query, locale, k: 4 } });
      const best = r.candidates[0];
      if (!best) { box.innerHTML = '<p class="unsure">No article matches.</p>'; return; }
      const verdict = r.confident ? '<span class="confident">would answer</span>' :
        (r.ambiguous ? '<span class="unsure">would ask which one was meant</span>' : '<span class="unsure">not confident: would not answer</span>');
      box.innerHTML =
        `<p id="try-verdict">${verdict} — confidence <strong id="try-confidence">${Math.round(best.confidence * 100)}%</strong>` +
        ` (threshold ${Math.round(r.threshold * 100)}%), language ${esc(r.locale)}${r.detected_locale ? " (detected)" : ""}</p>` +
        `<p>Article <code id="try-article">${esc(best.article_id)}</code> v${best.version}, answered in <strong id="try-served">${esc(best.locale)}</strong>` +
        `${r.fallback_used ? ` <span class="badge outdated">fallback: no ${esc(r.locale)} translation</span>` : ""}</p>` +
        `<div class="answer" id="try-answer"><h3>${esc(best.title)}</h3>${markdown(best.answer)}</div>` +
        `<h3 style="font-size:14px">Runner-ups</h3><ol id="try-runnerups">` +
        r.candidates.slice(1).map((c) => `<li><code>${esc(c.article_id)}</code> ${Math.round(c.confidence * 100)}% (score ${c.score.toFixed(3)})</li>`).join("") +
        "</ol>";
    } catch (e) { box.innerHTML = `<p class="error">${esc(e.message)}</p>`; }
  }
  $("#try-go").addEventListener("click", tryIt);
  $("#try-query").addEventListener("keydown", (ev) => { if (ev.key === "Enter") tryIt(); });

  // ------------------------------------------------------------------ unanswered groups
  async function loadGroups() {
    const box = $("#groups");
    box.textContent = "Loading…";
    try {
      const data = await api("/api/v1/kb/unanswered/groups");
      box.innerHTML = data.groups.length ? "" : '<p class="muted">Nothing unanswered. 🎉</p>';
      const ids = state.list ? state.list.articles.map((a) => a.article_id) : [];
      for (const g of data.groups) {
        const el = document.createElement("div");
        el.className = "group";
        el.dataset.group = g.group_id;
        const langs = Object.entries(g.languages).map(([l, n]) => `${l} ×${n}`).join(", ");
        const reasons = Object.entries(g.reasons || {}).map(([r, n]) => `${REASONS[r] || r} ×${n}`).join(", ");
        el.innerHTML = `<div><strong>${g.count} message${g.count === 1 ? "" : "s"}</strong> — ${esc(langs)}` +
          ` <span class="reasons">(${esc(reasons)})</span>` +
          ` <span class="muted">first ${new Date(g.first_seen).toLocaleString()}, last ${new Date(g.last_seen).toLocaleString()}</span></div>` +
          `<ul>${g.examples.map((x) => `<li>${esc(x)}</li>`).join("")}</ul>` +
          `<div class="row">` +
          `<input type="text" class="new-id" aria-label="New article id" placeholder="new-article-id" style="width:12rem">` +
          `<input type="text" class="new-title" aria-label="New article title" placeholder="Title" style="width:14rem">` +
          `<button class="new-article">New article from this group</button>` +
          `<select class="target" aria-label="Existing article">${ids.map((i) => `<option ${i === g.suggested_article ? "selected" : ""}>${esc(i)}</option>`).join("")}</select>` +
          `<button class="add-questions">Add as example questions</button></div>`;
        el.querySelector(".new-article").addEventListener("click", async () => {
          const id = el.querySelector(".new-id").value.trim();
          const title = el.querySelector(".new-title").value.trim() || id;
          try {
            await api("/api/v1/kb/unanswered/new-article", { method: "POST", body: { question_ids: g.question_ids, article_id: id, title } });
            toast(`Draft '${id}' created with ${g.count} example questions`);
            await loadList();
            showTab("articles");
            await openArticle(id);
            $("#editor-status").textContent = "New article draft from unanswered questions: write the answer, then publish.";
          } catch (e) { toast(e.message); }
        });
        el.querySelector(".add-questions").addEventListener("click", async () => {
          const target = el.querySelector(".target").value;
          try {
            await api("/api/v1/kb/unanswered/add-to-article", { method: "POST", body: { question_ids: g.question_ids, article_id: target } });
            toast(`Added to a draft of '${target}'`);
            await loadList();
            showTab("articles");
            await openArticle(target);
          } catch (e) { toast(e.message); }
        });
        box.appendChild(el);
      }
    } catch (e) { box.innerHTML = `<p class="error">${esc(e.message)}</p>`; }
  }

  boot();
})();
