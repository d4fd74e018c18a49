/* chatgate web console. Plain JS, no build step, no library.
 * Every text that came from a customer (or anyone) goes into the page with textContent. */
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const state = {
    me: null, csrf: "", view: "", tab: "inbox", offset: 0, limit: 20, channel: "", topic: "",
    chat: null, chatId: "", active: sessionStorage.getItem("chatgate.active") || "",
    filtersFilled: false,
  };

  // -- helpers -----------------------------------------------------------------
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }
  function clock(at) {
    const d = new Date(at * 1000);
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }
  const rating = (r) => (r === null || r === undefined ? "–" : `${"★".repeat(r)}${"☆".repeat(5 - r)}`);
  const STATE_NAMES = { new: "New", active: "Active", resolved: "Resolved", closed: "Closed" };
  const clientId = () => Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");

  let noticeTimer = 0;
  function notice(text, kind) {
    const box = $("notice");
    box.textContent = text;
    box.className = kind === "info" ? "notice info" : "notice";
    box.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { box.hidden = true; }, kind === "info" ? 4000 : 10000);
  }

  async function api(path, options) {
    const opts = options || {};
    const init = { method: opts.method || "GET", headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (init.method !== "GET") {
      init.headers["X-CSRF-Token"] = state.csrf;
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body || {});
    }
    const res = await fetch(path, init);
    if (res.status === 401) {
      location.assign("/console/login");
      throw new Error("You are signed out.");
    }
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const err = new Error((data && data.message) || `The server answered ${res.status}.`);
      err.status = res.status;
      err.code = data && data.error;
      throw err;
    }
    return data;
  }

  // -- sound (B) -----------------------------------------------------------------
  let audio = null;
  function unlockAudio() {
    if (!audio && window.AudioContext) audio = new AudioContext();
    if (audio && audio.state === "suspended") audio.resume();
  }
  function beep() {
    if (!audio) return;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.25, audio.currentTime + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.35);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.4);
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
  }
  document.addEventListener("click", unlockAudio, { once: true });
  document.addEventListener("keydown", unlockAudio, { once: true });

  // -- figures -----------------------------------------------------------------
  function renderFigures(f) {
    if (!f) return;
    $("fig-waiting").textContent = f.waiting;
    $("fig-median").textContent = duration(f.median_first_response);
    $("fig-rating").textContent = f.average_rating === null ? "–" : `${f.average_rating.toFixed(1)} (${f.ratings})`;
  }

  // Who has room for another chat.
  function renderRoom(room) {
    const box = $("fig-room");
    box.hidden = !(room && room.length);
    if (box.hidden) return;
    box.replaceChildren(el("span", "", "Room: "), ...room.map((a) => el(
      "span", a.capacity && a.active >= a.capacity ? "full" : "free",
      `${a.name} ${a.active}${a.capacity ? "/" + a.capacity : ""} `)));
  }

  // -- views -------------------------------------------------------------------
  function show(view) {
    state.view = view;
    for (const id of ["lists", "chat", "admin"]) $(id).hidden = id !== view;
  }

  function route() {
    const hash = location.hash;
    const chat = hash.match(/^#\/chat\/([A-Za-z0-9:_-]{1,100})$/);
    if (chat) { openChat(chat[1]); return; }
    if (hash === "#/admin" && state.me && state.me.admin) { openAdmin(); return; }
    const tab = hash === "#/assigned" ? "assigned" : "inbox";
    if (tab !== state.tab) state.offset = 0;
    state.tab = tab;
    state.chatId = "";
    show("lists");
    $("tab-inbox").classList.toggle("current", tab === "inbox");
    $("tab-assigned").classList.toggle("current", tab === "assigned");
    $("tab-inbox").setAttribute("aria-selected", String(tab === "inbox"));
    $("tab-assigned").setAttribute("aria-selected", String(tab === "assigned"));
    loadLists();
  }

  // -- lists -------------------------------------------------------------------
  function fillSelect(select, options, current) {
    const keep = select.options[0];
    select.replaceChildren(keep);
    for (const [value, label] of options) {
      const option = el("option", "", label);
      option.value = value;
      select.appendChild(option);
    }
    select.value = current;
  }

  // The agents a chat can be given to (transfer, reassign): everyone but its assignee; keeps the pick.
  function agentChoices(select, c) {
    const current = select.value;
    select.replaceChildren(...c.agents.filter((a) => a.id !== c.assignee).map((a) => {
      const option = el("option", "", a.name);
      option.value = a.id;
      return option;
    }));
    if (current) select.value = current;
  }

  let listsSeq = 0;
  async function loadLists() {
    const seq = ++listsSeq;
    const q = new URLSearchParams({ tab: state.tab, offset: state.offset, limit: state.limit });
    if (state.channel) q.set("channel", state.channel);
    if (state.topic) q.set("topic", state.topic);
    let data;
    try { data = await api(`/console/api/lists?${q}`); } catch (e) { notice(e.message); return; }
    if (seq !== listsSeq) return;
    renderFigures(data.figures);
    renderRoom(data.room);
    $("count-inbox").textContent = data.counts.inbox;
    $("count-assigned").textContent = data.counts.assigned;
    if (!state.filtersFilled) {
      fillSelect($("filter-channel"), data.channels.map((c) => [c.name, c.label]), state.channel);
      fillSelect($("filter-topic"), data.topics.map((t) => [t, t]), state.topic);
      state.filtersFilled = true;
    }
    const body = $("rows");
    body.replaceChildren(...data.rows.map(row));
    $("empty").hidden = data.rows.length > 0;
    $("empty").textContent = state.tab === "inbox" ? "No chats waiting in the Inbox." : "No chats assigned to you.";
    const last = Math.min(data.offset + data.rows.length, data.total);
    $("page-info").textContent = data.total ? `${data.offset + 1}–${last} of ${data.total}` : "";
    $("prev").disabled = data.offset === 0;
    $("next").disabled = !data.has_more;
    if (data.rows.length === 0 && data.offset > 0) { state.offset = Math.max(0, data.offset - state.limit); loadLists(); }
    $("go-back").disabled = !state.active;
  }

  function cell(label, text, sub) {
    const td = el("td", "", text);
    td.dataset.label = label;
    if (sub) td.appendChild(el("span", "sub", sub));
    return td;
  }

  function row(r) {
    const tr = el("tr");
    tr.tabIndex = 0;
    tr.dataset.id = r.id;
    const name = cell("Customer", r.customer);
    if (r.undelivered) name.appendChild(el("span", "badge", `${r.undelivered} undelivered`));
    // A chat escalated for waiting too long is highlighted.
    if (r.escalations && r.state === "new") {
      tr.classList.add("escalated");
      name.appendChild(el("span", "badge escalated", `waiting too long ×${r.escalations}`));
    }
    const stateCell = el("td");
    stateCell.dataset.label = "State";
    stateCell.appendChild(el("span", `state ${r.state}`, STATE_NAMES[r.state] || r.state));
    if (r.assignee_name && state.tab === "inbox") stateCell.appendChild(el("span", "sub", r.assignee_name));
    tr.append(
      name, stateCell,
      cell("First Response", duration(r.first_response)),
      cell("Duration", duration(r.duration), `${r.messages} message${r.messages === 1 ? "" : "s"}`),
      cell("Rating", rating(r.rating)),
      cell("Channel", r.channel_label),
      cell("Topic", r.topic),
    );
    const open = () => { location.hash = `#/chat/${r.id}`; };
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    return tr;
  }

  // -- one chat ------------------------------------------------------------------
  async function openChat(id) {
    if (state.chatId !== id) {
      state.chat = null;
      $("history").replaceChildren();
    }
    state.chatId = id;
    show("chat");
    await loadChat();
  }

  let chatSeq = 0;
  async function loadChat() {
    const seq = ++chatSeq;
    const id = state.chatId;
    if (!id || state.view !== "chat") return;
    try {
      const data = await api(`/console/api/chats/${encodeURIComponent(id)}`);
      if (seq === chatSeq && id === state.chatId) renderChat(data);
    } catch (e) {
      if (e.status === 404) { notice(e.message); location.hash = `#/${state.tab}`; } else notice(e.message);
    }
  }

  function setDisabled(id, disabled, why) {
    const button = $(id);
    button.disabled = disabled;
    button.title = disabled ? why : "";
  }

  function renderChat(c) {
    const first = !state.chat || state.chat.id !== c.id;
    const historyBox = $("history");
    const atBottom = historyBox.scrollHeight - historyBox.scrollTop - historyBox.clientHeight < 40;
    state.chat = c;
    if (c.mine) {
      state.active = c.id;
      sessionStorage.setItem("chatgate.active", c.id);
    } else if (state.active === c.id) {
      state.active = "";
      sessionStorage.removeItem("chatgate.active");
    }
    $("back-to-list").href = c.mine ? "#/assigned" : `#/${state.tab}`;
    $("chat-title").textContent = c.profile.name || c.profile.phone || "Customer";
    const badge = $("chat-state");
    badge.className = `state ${c.state}`;
    badge.textContent = STATE_NAMES[c.state] || c.state;

    const ctl = c.controls;
    const notYours = c.state === "new" ? "Accept this chat first (E)." : "Only the agent who accepted this chat can use this.";
    setDisabled("ctl-back", !ctl.back, notYours);
    setDisabled("ctl-sound", !ctl.sound, notYours);
    setDisabled("ctl-leave", !ctl.leave, notYours);
    setDisabled("ctl-resolve", !ctl.resolve, c.mine ? "The chat is already resolved." : notYours);
    setDisabled("ctl-accept", !ctl.accept, "Only a chat waiting in the Inbox can be accepted.");
    setDisabled("ctl-reject", !ctl.reject, "Only a chat waiting in the Inbox can be rejected.");
    $("ctl-sound").setAttribute("aria-pressed", String(Boolean(c.sound)));
    $("sound-label").textContent = c.sound ? "Speaker on" : "Speaker off";
    $("controls-hint").textContent = c.state === "new" && (ctl.accept || ctl.reject)
      ? "Accept the chat (E) to reply and to use A–D, or reject it (F) to leave it to the others."
      : c.state === "new" ? "You rejected this chat; it stays in the Inbox for the others." : "";

    renderOtherControls(c);

    historyBox.replaceChildren(...c.history.map((entry) => message(entry, ctl.redeliver)));
    if (first || atBottom) historyBox.scrollTop = historyBox.scrollHeight;
    $("chat-status").textContent = {
      new: "Waiting in the Inbox.",
      active: `Active with ${c.assignee_name || "an agent"}.`,
      resolved: `Resolved by ${c.assignee_name || "an agent"}; the customer was asked for a rating.`,
      closed: "Closed.",
    }[c.state] || "";

    $("reply-form").hidden = !ctl.reply;
    $("note-form").hidden = !ctl.note;
    // Transfer: the assignee hands the chat on, with a note.
    const transfer = $("transfer-form");
    transfer.hidden = !ctl.transfer;
    if (ctl.transfer) agentChoices($("transfer-to"), c);
    $("c-holders").textContent = (c.holders || []).map(
      (h) => `${h.name} ${clock(h.from)}–${h.to ? clock(h.to) : "now"}`).join(", ") || "–";
    $("c-escalations").textContent = String(c.escalations || 0);
    const reassign = $("reassign-form");
    reassign.hidden = !ctl.reassign;
    if (ctl.reassign) agentChoices($("reassign-to"), c);

    const p = c.profile;
    $("p-name").textContent = p.name || "–";
    $("p-query").textContent = p.query || "–";
    $("p-phone").textContent = p.phone || "–";
    $("p-location").textContent = p.location || "–";
    $("c-channel").textContent = c.channel_label;
    $("c-topic").textContent = c.topic;
    $("c-agent").textContent = c.assignee_name || "–";
    $("c-first").textContent = duration(c.first_response);
    $("c-duration").textContent = `${duration(c.duration)} · ${c.messages} message${c.messages === 1 ? "" : "s"}`;
    $("c-rating").textContent = rating(c.rating);
  }

  // The controls the page has its own buttons and forms for; any other the core makes available
  // (c.available, as declared) is a plain button with its declared label.
  const OWN_CONTROLS = new Set(["accept", "reject", "resolve", "leave", "sound", "reply", "note", "redeliver",
    "reassign", "transfer"]);
  function renderOtherControls(c) {
    const others = (c.available || []).filter((control) => !OWN_CONTROLS.has(control.name)
      && control.arguments.every((argument) => !argument.required));
    $("ctl-more").replaceChildren(...others.map((control) => {
      const button = el("button", "control", control.label || control.name);
      button.type = "button";
      button.id = `ctl-op-${control.name}`;
      button.dataset.control = control.name;
      button.addEventListener("click", () => act(control.name, {}, `${control.label || control.name}: done.`));
      return button;
    }));
  }

  function message(entry, canRetry) {
    const kind = entry.direction === "note" ? "note" : entry.by === "system" ? "system" : entry.direction;
    const li = el("li", `msg ${kind}`);
    li.dataset.seq = entry.seq;
    const who = el("div", "who");
    who.append(el("span", "", kind === "note" ? `${entry.by_name} · private note` : entry.by_name), el("span", "", clock(entry.at)));
    li.appendChild(who);
    if (entry.text) li.appendChild(el("div", "text", entry.text));
    for (const a of entry.attachments) li.appendChild(el("div", "attachment", `[${a.kind}${a.name ? `: ${a.name}` : ""}]`));
    if (entry.direction === "out" && entry.status) {
      const failed = entry.status === "failed";
      const status = el("div", failed ? "status failed" : "status",
        failed ? `Not delivered${entry.detail ? `: ${entry.detail}` : ""}` : entry.status);
      if (failed && canRetry) {
        const retry = el("button", "", "Retry");
        retry.type = "button";
        retry.addEventListener("click", () => act("redeliver", { seq: entry.seq }, "Sending it again."));
        status.appendChild(retry);
      }
      li.appendChild(status);
    }
    return li;
  }

  async function act(action, body, done) {
    if (!state.chatId) return;
    try {
      const data = await api(`/console/api/chats/${encodeURIComponent(state.chatId)}/${action}`, { method: "POST", body });
      renderChat(data.chat);
      if (done) notice(done, "info");
      return true;
    } catch (e) {
      notice(e.message);
      loadChat();
      return false;
    }
  }

  function goBack() {
    if (!state.active) return;
    if (state.chatId === state.active && state.view === "chat") {
      const box = $("history");
      box.scrollTop = box.scrollHeight;
      if (!$("reply-form").hidden) $("reply-text").focus();
    } else {
      location.hash = `#/chat/${state.active}`;
    }
  }

  async function send(form, textarea, action, done) {
    const text = textarea.value.trim();
    if (!text) return;
    const button = form.querySelector("button");
    button.disabled = true;
    const ok = await act(action, { text, client_id: clientId() }, done);
    button.disabled = false;
    if (ok) textarea.value = "";
    textarea.focus();
  }

  // -- admin -------------------------------------------------------------------
  async function openAdmin() {
    show("admin");
    state.chatId = "";
    let data;
    try { data = await api("/console/api/admin"); } catch (e) { notice(e.message); return; }
    renderAdmin(data);
    loadSavedAdmin();
    loadReport();
  }

  function renderAdmin(data) {
    $("auto-close-on").checked = data.auto_close.enabled;
    $("auto-close-after").value = Math.round(data.auto_close.after);
    $("auto-close-human").textContent = `(${duration(data.auto_close.after)})`;
    $("agents").replaceChildren(...data.agents.map((a) => {
      const tr = el("tr");
      tr.append(el("td", "", a.id), el("td", "", a.name), el("td", "", a.admin ? "Admin" : "Agent"),
        el("td", "", a.slack || "–"), el("td", "", a.web_sign_in ? "Yes" : "No"));
      return tr;
    }));
  }

  // -- live --------------------------------------------------------------------
  let listTimer = 0;
  let chatTimer = 0;
  function onChatEvent(ev) {
    if (state.view === "lists") {
      clearTimeout(listTimer);
      listTimer = setTimeout(loadLists, 150);
    }
    if (state.view === "chat" && ev.conversation_id === state.chatId) {
      clearTimeout(chatTimer);
      chatTimer = setTimeout(loadChat, 100);
    }
    if (ev.kind === "message" || ev.kind === "reopened") maybeBeep(ev.conversation_id, ev.seq || 0);
    if (ev.kind === "escalated") beep();  // a chat waits too long
  }

  // Messages that must not ring (again): "chat:seq" rung already, and per chat the last seq
  // that was in the history when its speaker was turned on.
  const rung = new Set();
  const quietUpTo = {};
  function lastSeq(chat) {
    return chat.history.reduce((top, entry) => Math.max(top, entry.seq), 0);
  }

  async function maybeBeep(id, seq) {
    // B is per chat: ring only for the chats this agent accepted and left the speaker on.
    const key = `${id}:${seq}`;
    if (rung.has(key) || (seq && seq <= (quietUpTo[id] || 0))) return;
    let chat = state.chat && state.chat.id === id ? state.chat : null;
    if (!chat) {
      try { chat = await api(`/console/api/chats/${encodeURIComponent(id)}`); } catch (e) { return; }
    }
    if (chat.mine && chat.sound && !rung.has(key)) {
      rung.add(key);
      beep();
    }
  }

  function connectLive() {
    const source = new EventSource("/console/api/events");
    const live = $("live");
    source.addEventListener("open", () => {
      live.className = "live";
      live.title = "Live updates: connected";
      // Whatever happened while disconnected was replayed; refresh anyway in case the stream was trimmed.
      if (state.view === "lists") loadLists(); else if (state.view === "chat") loadChat();
    });
    source.addEventListener("error", async () => {
      live.className = "live off";
      live.title = "Live updates: reconnecting";
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (signed out?): find out, then try again.
        try { await api("/console/api/me"); } catch (e) { return; }
        setTimeout(connectLive, 3000);
      }
    });
    source.addEventListener("figures", (e) => renderFigures(JSON.parse(e.data)));
    source.addEventListener("chat", (e) => onChatEvent(JSON.parse(e.data)));
  }

  // -- saved replies in the reply box, admin panels, reports --------------------
  const saved = { items: [], index: 0, timer: 0 };
  function savedOpen() { return !$("saved-list").hidden; }
  function closeSaved() { $("saved-list").hidden = true; saved.items = []; }
  function renderSaved() {
    const list = $("saved-list");
    list.replaceChildren(...saved.items.map((r, i) => {
      const li = el("li", i === saved.index ? "current" : "", r.name);
      li.setAttribute("role", "option");
      li.dataset.name = r.name;
      li.append(el("small", "", r.filled || r.text));
      li.addEventListener("mousedown", (e) => { e.preventDefault(); pickSaved(i); });
      return li;
    }));
    list.hidden = saved.items.length === 0;
  }
  function pickSaved(i) {
    const r = saved.items[i];
    if (!r) return;
    $("reply-text").value = r.filled || r.text;
    closeSaved();
    $("reply-text").focus();
  }
  async function searchSaved() {
    const value = $("reply-text").value;
    if (!value.startsWith("/") || value.includes("\n")) { closeSaved(); return; }
    const q = encodeURIComponent(value.slice(1));
    const chat = encodeURIComponent(state.chatId || "");
    try {
      const data = await api(`/console/api/saved-replies?q=${q}&chat=${chat}`);
      if (!$("reply-text").value.startsWith("/")) return;
      saved.items = data.replies;
      saved.index = 0;
      renderSaved();
    } catch (e) { closeSaved(); }
  }
  function wireSavedRepliesAndReports() {
    const box = $("reply-text");
    box.addEventListener("input", () => { clearTimeout(saved.timer); saved.timer = setTimeout(searchSaved, 120); });
    // Registered before the reply box's own keys: while the list is open, Enter picks instead of sending.
    box.addEventListener("keydown", (e) => {
      if (!savedOpen()) return;
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        saved.index = (saved.index + (e.key === "ArrowDown" ? 1 : -1) + saved.items.length) % saved.items.length;
        renderSaved();
      } else if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        e.stopImmediatePropagation();
        pickSaved(saved.index);
      } else if (e.key === "Escape") {
        closeSaved();
      }
    });
    box.addEventListener("blur", () => setTimeout(closeSaved, 150));
    $("saved-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await api("/console/api/saved-replies", { method: "POST", body: {
          name: $("saved-name").value, text: $("saved-text").value, previous: $("saved-previous").value } });
        $("saved-name").value = ""; $("saved-text").value = ""; $("saved-previous").value = "";
        notice("Saved reply stored.", "info");
        loadSavedAdmin();
      } catch (err) { notice(err.message); }
    });
    $("report-since").addEventListener("change", loadReport);
  }
  async function loadSavedAdmin() {
    let data;
    try { data = await api("/console/api/saved-replies"); } catch (e) { notice(e.message); return; }
    $("saved-rows").replaceChildren(...data.replies.map((r) => {
      const tr = el("tr");
      const actions = el("td");
      const edit = el("button", "", "Edit");
      edit.type = "button";
      edit.addEventListener("click", () => {
        $("saved-name").value = r.name; $("saved-text").value = r.text; $("saved-previous").value = r.name;
        $("saved-name").focus();
      });
      const del = el("button", "", "Delete");
      del.type = "button";
      del.addEventListener("click", async () => {
        try {
          await api("/console/api/saved-replies/delete", { method: "POST", body: { name: r.name } });
          loadSavedAdmin();
        } catch (err) { notice(err.message); }
      });
      actions.append(edit, del);
      tr.append(el("td", "", r.name), el("td", "", r.text), el("td", "", r.source === "config" ? "config" : "admins"), actions);
      return tr;
    }));
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }
  function chart(days) {
    const width = 600, height = 160, pad = 24;
    const top = Math.max(1, ...days.map((d) => d.chats));
    const step = (width - pad) / Math.max(1, days.length);
    const root = svg("svg", { viewBox: `0 0 ${width} ${height + 30}`, width, height: height + 30, role: "img" });
    root.append(svg("title", {}, "Chats per day"));
    days.forEach((d, i) => {
      const h = Math.round((d.chats / top) * (height - pad));
      const x = pad + i * step;
      const bar = svg("rect", { class: "bar", x: x + 2, y: height - h, width: Math.max(2, step - 4), height: h });
      bar.append(svg("title", {}, `${d.day}: ${d.chats} chats, median first response ${duration(d.median_first_response)}`));
      root.append(bar, svg("text", { x: x + step / 2, y: height - h - 3, "text-anchor": "middle" }, d.chats));
      if (days.length <= 31) root.append(svg("text", { x: x + step / 2, y: height + 14, "text-anchor": "middle" }, d.day.slice(5)));
    });
    root.append(svg("line", { x1: pad, y1: height, x2: width, y2: height, stroke: "#999" }));
    return root;
  }
  async function loadReport() {
    const since = $("report-since").value;
    $("report-csv").href = `/console/api/reports.csv?since=${encodeURIComponent(since)}`;
    let data;
    try { data = await api(`/console/api/reports?since=${encodeURIComponent(since)}`); } catch (e) { notice(e.message); return; }
    $("report-summary").textContent = `${data.conversations} conversations from ${data.since} to ${data.until}.`;
    $("report-chart").replaceChildren(chart(data.days));
    $("report-agents").replaceChildren(...data.agents.map((a) => {
      const tr = el("tr");
      tr.append(el("td", "", a.name || a.agent), el("td", "", a.chats), el("td", "", duration(a.median_first_response_seconds)),
        el("td", "", a.average_rating === null ? "–" : a.average_rating.toFixed(2)), el("td", "", `${a.messages_in} / ${a.messages_out}`));
      return tr;
    }));
  }

  // -- wiring ------------------------------------------------------------------
  function wire() {
    $("filter-channel").addEventListener("change", (e) => { state.channel = e.target.value; state.offset = 0; loadLists(); });
    $("filter-topic").addEventListener("change", (e) => { state.topic = e.target.value; state.offset = 0; loadLists(); });
    $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); loadLists(); });
    $("next").addEventListener("click", () => { state.offset += state.limit; loadLists(); });
    $("go-back").addEventListener("click", goBack);
    $("ctl-back").addEventListener("click", goBack);
    $("ctl-sound").addEventListener("click", () => {
      unlockAudio();
      const on = !(state.chat && state.chat.sound);
      if (on && state.chat) quietUpTo[state.chat.id] = lastSeq(state.chat);
      act("sound", { on }, on ? "Speaker on: a sound plays on each new customer message." : "Speaker off.");
    });
    $("ctl-leave").addEventListener("click", () => act("leave", {}, "You left the chat."));
    $("ctl-resolve").addEventListener("click", () => act("resolve", {}, "Marked as resolved; the customer was asked for a rating."));
    $("ctl-accept").addEventListener("click", () => act("accept", {}, "Accepted: the chat is yours."));
    $("ctl-reject").addEventListener("click", async () => {
      if (await act("reject", {}, "Rejected: the chat stays in the Inbox for the others.")) location.hash = "#/inbox";
    });
    $("reply-form").addEventListener("submit", (e) => { e.preventDefault(); send($("reply-form"), $("reply-text"), "reply"); });
    $("reply-text").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send($("reply-form"), $("reply-text"), "reply"); }
    });
    $("note-form").addEventListener("submit", (e) => { e.preventDefault(); send($("note-form"), $("note-text"), "note", "Note added."); });
    $("transfer-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const to = $("transfer-to").value;
      if (to) act("transfer", { to, note: $("transfer-note").value }, "Transferred.");
      $("transfer-note").value = "";
    });
    $("reassign-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const to = $("reassign-to").value;
      if (to) act("reassign", { to }, "Reassigned.");
    });
    $("auto-close-after").addEventListener("input", (e) => { $("auto-close-human").textContent = `(${duration(Number(e.target.value))})`; });
    $("auto-close-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const data = await api("/console/api/admin", { method: "POST",
          body: { auto_close: $("auto-close-on").checked, after: Number($("auto-close-after").value) } });
        renderAdmin(data);
        notice(`Saved. ${data.affected} resolved chat${data.affected === 1 ? "" : "s"} affected.`, "info");
      } catch (err) { notice(err.message); }
    });
    $("logout").addEventListener("click", async () => {
      try { await api("/console/logout", { method: "POST" }); } catch (e) { /* signed out anyway */ }
      location.assign("/console/login");
    });
    window.addEventListener("hashchange", route);
  }

  async function start() {
    const me = await api("/console/api/me");
    state.me = me.agent;
    state.csrf = me.csrf;
    $("me-name").textContent = me.agent.name;
    $("admin-link").hidden = !me.agent.admin;
    document.body.dataset.ready = "1";
    wireSavedRepliesAndReports();  // before wire(), see the reply box's keys
    wire();
    route();
    connectLive();
  }

  start().catch((e) => notice(e.message));
})();
