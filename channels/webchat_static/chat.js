/* chatgate web chat: the customer's page. Plain JS, no build step, no inline code (CSP: script-src 'self').
 * Every text from the server goes into the page as text nodes; agent messages are "chatgate text"
 * (**bold**, _italic_, [label](url)) turned into <strong>, <em> and safe <a> elements. */
(function () {
  "use strict";

  var API = new URL("chat/api/", location.href).href;
  var embed = new URLSearchParams(location.search).get("embed") === "1";
  var STATES = { "new": "Waiting for an agent…", active: "Connected", resolved: "Resolved", closed: "Closed" };

  var state = {
    conversation: null,   // {id, state, rating, rating_pending, closed}
    keys: {},             // "conversation:seq" of messages shown
    lastEventId: "",
    source: null,
    maxChars: 4000,
    greeting: ""
  };

  function $(id) { return document.getElementById(id); }

  // ---- chatgate text ---------------------------------------------------------

  function safeUrl(raw) {
    var url;
    try { url = new URL(raw); } catch (e) { return null; }
    return ["http:", "https:", "mailto:"].indexOf(url.protocol) >= 0 ? url.href : null;
  }

  function appendText(parent, text) {
    if (text) parent.appendChild(document.createTextNode(text));
  }

  function renderInline(parent, text) {
    var re = /\*\*([\s\S]+?)\*\*|\[([^\]\n]+)\]\(([^)\s]+)\)|(^|[^A-Za-z0-9_])_([^_\n]+?)_(?![A-Za-z0-9_])/g;
    var last = 0, m, el;
    while ((m = re.exec(text)) !== null) {
      if (m[1] !== undefined) {
        appendText(parent, text.slice(last, m.index));
        el = document.createElement("strong");
        renderInline(el, m[1]);
        parent.appendChild(el);
      } else if (m[2] !== undefined) {
        appendText(parent, text.slice(last, m.index));
        var href = safeUrl(m[3]);
        if (href) {
          el = document.createElement("a");
          el.href = href;
          el.rel = "noopener noreferrer";
          el.target = "_blank";
          el.textContent = m[2];
          parent.appendChild(el);
        } else {
          appendText(parent, m[0]);
        }
      } else {
        appendText(parent, text.slice(last, m.index) + m[4]);
        el = document.createElement("em");
        renderInline(el, m[5]);
        parent.appendChild(el);
      }
      last = re.lastIndex;
    }
    appendText(parent, text.slice(last));
  }

  // ---- the server --------------------------------------------------------------

  function api(method, path, body) {
    var init = { method: method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(API + path, init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { status: response.status, data: data };
      });
    });
  }

  function randomId() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  // ---- the page ---------------------------------------------------------------

  function showError(id, text) {
    var el = $(id);
    el.textContent = text || "";
    el.hidden = !text;
  }

  function setStatus(text) { $("status").textContent = text || ""; }

  function showStart() {
    closeEvents();
    $("chat").hidden = true;
    $("start").hidden = false;
    setStatus("");
    $("name").focus();
  }

  function formatTime(at) {
    if (!at) return "";
    try {
      return new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    } catch (e) { return ""; }
  }

  function scrollDown() {
    var list = $("messages");
    list.scrollTop = list.scrollHeight;
  }

  function bubble(from, text, at, key) {
    var li = document.createElement("li");
    li.className = "msg " + (from === "you" ? "you" : from === "agent" ? "agent" : "system");
    if (key) li.dataset.key = key;
    var body = document.createElement("span");
    body.className = "text";
    if (from === "you") body.textContent = text; else renderInline(body, text);
    li.appendChild(body);
    var when = formatTime(at);
    if (when) {
      var time = document.createElement("time");
      time.className = "time";
      time.textContent = when;
      li.appendChild(time);
    }
    $("messages").appendChild(li);
    scrollDown();
    return li;
  }

  function addMessage(message, conversationId) {
    var key = conversationId + ":" + message.seq;
    if (message.seq && state.keys[key]) return;
    if (message.seq) state.keys[key] = true;
    bubble(message.from, message.text, message.at, key);
  }

  function setConversation(view) {
    state.conversation = view;
    $("rating").hidden = !(view && view.rating_pending);
    $("closed").hidden = !(view && view.closed);
    setStatus(view ? STATES[view.state] || "" : "");
    Array.prototype.forEach.call(document.querySelectorAll("[data-rating]"), function (b) { b.disabled = false; });
  }

  function render(data) {
    $("messages").textContent = "";
    state.keys = {};
    state.greeting = data.greeting || "";
    state.maxChars = data.max_message_chars || state.maxChars;
    if (state.greeting) bubble("system", state.greeting, 0, "");
    var conversationId = data.conversation ? data.conversation.id : "";
    (data.messages || []).forEach(function (m) { addMessage(m, conversationId); });
    setConversation(data.conversation);
    state.lastEventId = data.last_event_id || "";
  }

  function load() {
    return api("GET", "messages").then(function (r) {
      if (r.status === 401) { showStart(); return; }
      if (r.status !== 200) { setStatus(r.data.message || "The chat is unavailable; retrying…"); return sleep(5000).then(load); }
      render(r.data);
      $("start").hidden = true;
      $("chat").hidden = false;
      openEvents();
      $("text").focus();
    }, function () {
      setStatus("Offline; retrying…");
      return sleep(5000).then(load);
    });
  }

  // ---- live events ---------------------------------------------------------------

  function closeEvents() {
    if (state.source) { state.source.close(); state.source = null; }
  }

  function openEvents() {
    closeEvents();
    var url = API + "events" + (state.lastEventId ? "?after=" + encodeURIComponent(state.lastEventId) : "");
    var source = new EventSource(url);
    state.source = source;
    source.addEventListener("message", function (e) {
      var m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      if (e.lastEventId) state.lastEventId = e.lastEventId;
      if (m.conversation_id && state.conversation && m.conversation_id !== state.conversation.id) {
        load();  // another conversation (a new chat): show it whole
        return;
      }
      addMessage(m, m.conversation_id || "");
    });
    source.addEventListener("state", function (e) {
      var view;
      try { view = JSON.parse(e.data); } catch (err) { return; }
      if (view && state.conversation && view.id !== state.conversation.id) { load(); return; }
      if (view || !state.conversation) setConversation(view);
    });
    source.addEventListener("open", function () {
      if (state.conversation) setStatus(STATES[state.conversation.state] || "");
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (the session ended) or the server is gone: look again in a while.
        setStatus("Reconnecting…");
        if (state.source === source) { state.source = null; sleep(5000).then(load); }
      } else {
        setStatus("Reconnecting…");
      }
    });
  }

  // ---- actions ---------------------------------------------------------------

  function post(path, body) {
    // Retries after a network error reuse the body (and its client_id): the server stores it once.
    var attempt = 0;
    function go() {
      return api("POST", path, body).catch(function (err) {
        if (++attempt > 3) throw err;
        return sleep(500 * Math.pow(2, attempt)).then(go);
      });
    }
    return go();
  }

  function afterReceive(data) {
    var view = data.conversation;
    var switched = view && (!state.conversation || state.conversation.id !== view.id);
    if (data.duplicate || switched) return load();
    if (data.message && view) addMessage(data.message, view.id);
    setConversation(view);
  }

  function sendMessage(event) {
    event.preventDefault();
    var box = $("text");
    var text = box.value;
    if (!text.trim()) { showError("send-error", "Write a message first."); return; }
    if (text.length > state.maxChars) {
      showError("send-error", "Your message is too long: at most " + state.maxChars + " characters.");
      return;
    }
    showError("send-error", "");
    var pending = bubble("you", text, 0, "");
    pending.classList.add("pending");
    box.value = "";
    grow();
    post("messages", { text: text, client_id: randomId() }).then(function (r) {
      pending.remove();
      if (r.status === 200) return afterReceive(r.data);
      if (!box.value) { box.value = text; grow(); }
      showError("send-error", r.data.message || "Your message could not be sent.");
      if (r.status === 401) showStart();
    }, function () {
      pending.classList.add("failed");
      pending.classList.remove("pending");
      if (!box.value) { box.value = text; grow(); }
      showError("send-error", "You seem to be offline; your message was not sent. Try again.");
    });
  }

  function rate(event) {
    var button = event.target.closest("[data-rating]");
    if (!button) return;
    Array.prototype.forEach.call(document.querySelectorAll("[data-rating]"), function (b) { b.disabled = true; });
    post("rating", { rating: Number(button.dataset.rating) }).then(function (r) {
      if (r.status === 200) return afterReceive(r.data);
      setConversation(state.conversation);
      showError("send-error", r.data.message || "Your rating could not be sent.");
    }, function () {
      setConversation(state.conversation);
      showError("send-error", "You seem to be offline; your rating was not sent. Try again.");
    });
  }

  function startChat(event) {
    event.preventDefault();
    var name = $("name").value.trim();
    if (!name) { showError("start-error", "Please tell us your name."); $("name").focus(); return; }
    showError("start-error", "");
    $("start-button").disabled = true;
    post("start", {
      name: name, phone: $("phone").value.trim(), location: $("location").value.trim(), embed: embed
    }).then(function (r) {
      $("start-button").disabled = false;
      if (r.status !== 200) { showError("start-error", r.data.message || "The chat could not start."); return; }
      return load();
    }, function () {
      $("start-button").disabled = false;
      showError("start-error", "You seem to be offline. Try again.");
    });
  }

  function grow() {
    var box = $("text");
    box.style.height = "auto";
    box.style.height = Math.min(box.scrollHeight, 128) + "px";
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (embed) document.body.classList.add("embed");
    $("start-form").addEventListener("submit", startChat);
    $("compose").addEventListener("submit", sendMessage);
    $("rating").addEventListener("click", rate);
    $("text").addEventListener("input", grow);
    $("text").addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { sendMessage(e); }
    });
    load();
  });
})();
