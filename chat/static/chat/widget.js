/* Spotter chat widget: one <script> tag, no build step.
 *
 *   <script src="https://spotter.example/widget.js" data-server="https://spotter.example"
 *           data-theme="light|dark" data-title="Ask us" data-open="false" async></script>
 *
 * Rendered in a shadow root so the host page's CSS cannot break it (nor it the page's).
 * All text from the server is set with textContent: an answer containing <script> is text, and a link
 * is made only of an http(s) URL.
 *
 * The visitor token lives in localStorage and is traded for a new one at half its lifetime. The socket
 * opens with a one-use ticket bought with it (never the token in the URL). A question that got no
 * `start` before the socket dropped is sent again on reconnect (same client_msg_id: the server never
 * answers it twice), and Send is enabled again after any error and after a reconnect.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__spotterWidget) return;
  window.__spotterWidget = true;

  var data = script.dataset;
  var server = (data.server || new URL(script.src, location.href).origin).replace(/\/$/, "") || location.origin;
  var serverUrl = new URL(server || location.origin, location.href);
  var theme = data.theme === "dark" ? "dark" : "light";
  var storeKey = "spotter:" + serverUrl.host + ":";

  var CSS = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',sans-serif}",
    ".root{--bg:#fff;--fg:#1f2933;--muted:#616e7c;--line:#e4e7eb;--accent:#2563eb;--me:#2563eb;--me-fg:#fff;--bot:#f1f5f9}",
    ".root.dark{--bg:#1f2933;--fg:#f5f7fa;--muted:#9aa5b1;--line:#3e4c59;--accent:#60a5fa;--me:#3b82f6;--bot:#323f4b}",
    ".launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:999px;padding:14px 20px;",
    "background:var(--accent);color:#fff;font-size:15px;font-weight:600;cursor:pointer;box-shadow:0 6px 20px rgba(0,0,0,.2)}",
    ".panel{position:fixed;right:20px;bottom:20px;z-index:2147483001;width:380px;height:600px;max-height:calc(100vh - 40px);",
    "display:flex;flex-direction:column;background:var(--bg);color:var(--fg);border:1px solid var(--line);border-radius:14px;",
    "box-shadow:0 12px 40px rgba(0,0,0,.25);overflow:hidden}",
    ".panel[hidden],.launcher[hidden]{display:none}",
    "header{display:flex;align-items:center;gap:8px;padding:12px 14px;border-bottom:1px solid var(--line)}",
    "header h2{flex:1;margin:0;font-size:16px}",
    ".mode{font-size:11px;padding:2px 8px;border-radius:999px;background:#fff3c4;color:#8d2b0b}",
    ".status{font-size:11px;color:var(--muted)}",
    "button{font:inherit;cursor:pointer}",
    "button:focus-visible,textarea:focus-visible,a:focus-visible{outline:3px solid var(--accent);outline-offset:2px}",
    ".close{border:0;background:transparent;color:var(--fg);font-size:22px;line-height:1;padding:2px 8px}",
    ".log{flex:1;overflow-y:auto;padding:14px;display:flex;flex-direction:column;gap:10px}",
    ".msg{max-width:88%;padding:9px 12px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word;font-size:14px;line-height:1.45}",
    ".user{align-self:flex-end;background:var(--me);color:var(--me-fg)}",
    ".assistant,.human{align-self:flex-start;background:var(--bot)}",
    ".held .text{color:var(--muted);font-style:italic}",
    ".human{border-left:3px solid var(--accent)}.human .agent{font-size:11px;color:var(--muted);margin-bottom:2px}",
    ".notice{align-self:center;font-size:12px;color:var(--muted)}",
    ".error .text{color:#b42318}",
    ".pending{opacity:.65}.pending::after{content:'sending\\2026';display:block;font-size:11px;margin-top:2px}",
    ".resend{margin-top:6px;border:1px solid currentColor;background:transparent;color:inherit;border-radius:8px;font-size:12px;padding:2px 8px}",
    ".meta{display:flex;flex-wrap:wrap;align-items:center;gap:6px;margin-top:8px;white-space:normal}",
    ".badge{font-size:11px;padding:2px 8px;border-radius:999px;font-weight:600}",
    ".high{background:#dcfce7;color:#166534}.medium{background:#fef9c3;color:#854d0e}.low{background:#fee2e2;color:#991b1b}",
    ".verified{background:#dbeafe;color:#1e40af}",
    ".sources{margin:6px 0 0;padding-left:18px;font-size:12px;white-space:normal}",
    ".sources a{color:var(--accent)}",
    ".vote{border:1px solid var(--line);background:transparent;color:var(--fg);border-radius:8px;padding:3px 8px;line-height:0}",
    ".vote[aria-pressed=true]{background:var(--accent);color:#fff;border-color:var(--accent)}",
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid var(--line)}",
    "textarea{flex:1;resize:none;border:1px solid var(--line);border-radius:10px;padding:9px;font-size:14px;",
    "background:var(--bg);color:var(--fg);min-height:40px;max-height:120px}",
    ".send{border:0;border-radius:10px;padding:0 16px;background:var(--accent);color:#fff;font-weight:600}",
    ".send:disabled{opacity:.5;cursor:default}",
    ".memory-toggle{border:1px solid var(--line);background:transparent;color:var(--fg);border-radius:8px;font-size:12px;padding:3px 8px}",
    ".memory{padding:12px 14px;border-bottom:1px solid var(--line);display:flex;flex-direction:column;gap:8px;font-size:13px;max-height:60%;overflow-y:auto}",
    ".memory[hidden]{display:none}",
    ".memory label{display:flex;flex-direction:column;gap:3px;color:var(--muted);font-size:12px}",
    ".memory input{font:inherit;font-size:13px;padding:6px 8px;border:1px solid var(--line);border-radius:8px;background:var(--bg);color:var(--fg)}",
    ".memory ul{margin:0;padding:0;list-style:none;display:flex;flex-direction:column;gap:4px}",
    ".memory li{display:flex;gap:6px;align-items:flex-start}.memory li span{flex:1}",
    ".memory .row{display:flex;gap:8px}",
    ".forget,.edit{border:0;background:transparent;color:var(--muted);font-size:16px;line-height:1;padding:0 4px}",
    ".save{border:0;border-radius:8px;padding:6px 12px;background:var(--accent);color:#fff;font-weight:600}",
    ".wipe{border:1px solid #b42318;border-radius:8px;padding:6px 12px;background:transparent;color:#b42318}",
    ".download{border:1px solid var(--accent);border-radius:8px;padding:6px 12px;background:transparent;color:var(--accent)}",
    ".handoff{border:0;background:transparent;color:var(--muted);font-size:12px;text-decoration:underline;padding:0 14px 8px;text-align:left}",
    "@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;height:100dvh;max-height:100dvh;border-radius:0}}"
  ].join("");

  // ---- DOM -------------------------------------------------------------------------------------
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text != null) node.textContent = text;
    return node;
  }

  var host = el("div", { id: "spotter-widget" });
  var shadow = host.attachShadow({ mode: "open" });
  var style = el("style"); style.textContent = CSS;
  var root = el("div", { "class": "root " + theme });
  var launcher = el("button", { "class": "launcher", type: "button", "aria-haspopup": "dialog", "aria-expanded": "false" },
    data.launcherText || "Chat with us");
  var panel = el("section", { "class": "panel", role: "dialog", "aria-label": data.title || "Chat" });
  panel.hidden = true;
  var header = el("header");
  var title = el("h2", {}, data.title || "Assistant");
  var mode = el("span", { "class": "mode", title: "No LLM is configured: answers are extracted from the knowledge base" }, "offline mode");
  mode.hidden = true;
  var status = el("span", { "class": "status", "aria-live": "polite" }, "");
  var close = el("button", { "class": "close", type: "button", "aria-label": "Close chat" }, "\u00d7");
  var memoryToggle = el("button", { "class": "memory-toggle", type: "button", "aria-expanded": "false",
    title: "What the assistant remembers about you" }, "My profile");
  header.append(title, mode, status, memoryToggle, close);
  var memory = el("div", { "class": "memory", role: "region", "aria-label": "What the assistant remembers about you" });
  memory.hidden = true;
  var log = el("div", { "class": "log", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
  var handoff = el("button", { "class": "handoff", type: "button" }, "Talk to a human");
  var form = el("form");
  var input = el("textarea", { rows: "1", "aria-label": "Your message", placeholder: "Ask a question\u2026", maxlength: "4000" });
  var send = el("button", { "class": "send", type: "submit" }, "Send");
  form.append(input, send);
  panel.append(header, memory, log, handoff, form);
  root.append(launcher, panel);
  shadow.append(style, root);

  // ---- state -----------------------------------------------------------------------------------
  var token = localStorage.getItem(storeKey + "token");
  var tokenAt = Number(localStorage.getItem(storeKey + "token_at")) || 0;       // ms, when it was issued
  var tokenLife = Number(localStorage.getItem(storeKey + "token_life")) || 0;   // seconds it is good for
  var conversationId = localStorage.getItem(storeKey + "conversation");
  var answers = {};        // message_id -> {node, textNode, seq, done}
  var pending = [];        // frames (not questions) to send once connected
  var waiting = [];        // questions without their "start" yet: {node, textNode, frame}
  var socket = null, retries = 0, historyLoaded = false;

  function api(path, options) {
    options = options || {};
    options.headers = Object.assign({ "Content-Type": "application/json" }, options.headers || {},
      token ? { "X-Visitor-Token": token } : {});
    return fetch(server + path, options).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) { return { ok: r.ok, status: r.status, body: body }; });
    });
  }

  function keepToken(body) {
    token = body.token; tokenAt = Date.now(); tokenLife = body.expires_in || 0;
    localStorage.setItem(storeKey + "token", token);
    localStorage.setItem(storeKey + "token_at", String(tokenAt));
    localStorage.setItem(storeKey + "token_life", String(tokenLife));
    return token;
  }

  function forgetVisitor() {  // the token expired or is not valid: a new visitor, a new conversation
    token = null; conversationId = null;
    ["token", "token_at", "token_life", "conversation"].forEach(function (k) { localStorage.removeItem(storeKey + k); });
  }

  function ensureVisitor() {
    // A token kept from before tokens told their lifetime counts as old: it is refreshed at once.
    if (token && Date.now() - tokenAt < tokenLife * 500) return Promise.resolve(token);
    var asked = token ? api("/api/v1/visitors/refresh/", { method: "POST" }) : api("/api/v1/visitors/", { method: "POST" });
    return asked.then(function (r) {
      if (r.status === 401) { forgetVisitor(); return ensureVisitor(); }
      if (!r.ok) throw new Error("cannot start a session");
      return keepToken(r.body);
    });
  }

  function ticket(again) {
    return ensureVisitor().then(function () { return api("/api/v1/visitors/ticket/", { method: "POST" }); }).then(function (r) {
      if (r.status === 401 && !again) { forgetVisitor(); return ticket(true); }
      if (!r.ok) throw new Error("no ticket");
      return r.body.ticket;
    });
  }

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function notice(text) { log.append(el("div", { "class": "notice" }, text)); scrollDown(); }

  function bubble(role, text) {
    var node = el("div", { "class": "msg " + role });
    var textNode = el("div", { "class": "text" }, text || "");
    node.append(textNode);
    log.append(node);
    scrollDown();
    return { node: node, textNode: textNode };
  }

  function safeUrl(url) {
    try {
      var u = new URL(url, server || location.href);
      return (u.protocol === "http:" || u.protocol === "https:") ? u.href : null;
    } catch (e) { return null; }
  }

  function confidenceBadge(confidence) {
    var level = confidence >= 0.7 ? "high" : confidence >= 0.4 ? "medium" : "low";
    var label = { high: "High", medium: "Medium", low: "Low" }[level] + " confidence";
    return el("span", { "class": "badge confidence " + level, title: Math.round(confidence * 100) + "%" }, label);
  }

  // Drawn, not emoji: a page or OS without an emoji font would show empty boxes.
  var THUMB = "M2 10h4v11H2zM8 21h9.2a2 2 0 0 0 2-1.6l1.6-7A2 2 0 0 0 18.8 10H14l.8-4.2A2 2 0 0 0 12.9 3L8 9.5z";
  function thumbIcon(down) {
    var ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg"), path = document.createElementNS(ns, "path");
    svg.setAttribute("viewBox", "0 0 24 24"); svg.setAttribute("width", "14"); svg.setAttribute("height", "14");
    svg.setAttribute("aria-hidden", "true");
    if (down) svg.setAttribute("transform", "rotate(180)");
    path.setAttribute("d", THUMB); path.setAttribute("fill", "currentColor");
    svg.append(path);
    return svg;
  }

  function voteButton(messageId, value, label, meta) {
    var b = el("button", { "class": "vote", type: "button", "aria-pressed": "false", "aria-label": label, "data-value": value });
    b.append(thumbIcon(value === "down"));
    b.addEventListener("click", function () {
      transmit({ type: "feedback", message_id: messageId, value: value });
      meta.querySelectorAll(".vote").forEach(function (v) { v.setAttribute("aria-pressed", String(v === b)); });
    });
    return b;
  }

  function renderEnd(answer, frame) {
    answer.done = true;
    var meta = el("div", { "class": "meta" });
    if (frame.reuse === "approved") meta.append(el("span", { "class": "badge verified" }, "Verified answer"));
    if (typeof frame.confidence === "number") meta.append(confidenceBadge(frame.confidence));
    meta.append(voteButton(frame.message_id, "up", "Helpful", meta), voteButton(frame.message_id, "down", "Not helpful", meta));
    answer.node.append(meta);
    if (frame.sources && frame.sources.length) {
      var list = el("ol", { "class": "sources", "aria-label": "Sources" }), seen = {};
      frame.sources.forEach(function (s) {
        if (seen[s.url || s.title]) return;   // several chunks of one document: list it once
        seen[s.url || s.title] = true;
        var li = el("li"), href = safeUrl(s.url);
        if (href) li.append(el("a", { href: href, target: "_blank", rel: "noopener noreferrer" }, s.title));
        else li.textContent = s.title;
        list.append(li);
      });
      answer.node.append(list);
    }
    scrollDown();
  }

  function answerFor(messageId) {
    if (!answers[messageId]) {
      var b = bubble("assistant", "");
      answers[messageId] = { node: b.node, textNode: b.textNode, seq: 0, done: false };
    }
    return answers[messageId];
  }

  // ---- websocket ---------------------------------------------------------------------------------
  function isOpen() { return socket && socket.readyState === WebSocket.OPEN; }

  function transmit(frame) {
    if (isOpen()) socket.send(JSON.stringify(frame));
    else pending.push(frame);
  }

  function ask(question) {  // sent now, or on the next open (with every other question still without a start)
    question.node.classList.add("pending");
    question.node.classList.remove("error");
    if (waiting.indexOf(question) < 0) waiting.push(question);
    if (isOpen()) socket.send(JSON.stringify(question.frame));
  }

  function waiterFor(frame) {
    for (var i = 0; i < waiting.length; i++) {
      if (frame.client_msg_id ? waiting[i].frame.client_msg_id === frame.client_msg_id : !waiting[i].messageId) return i;
    }
    return -1;
  }

  function takeWaiter(frame) {
    var i = waiterFor(frame);
    return i < 0 ? null : waiting.splice(i, 1)[0];
  }

  function notSent(question, text) {  // the question stays on screen, marked, with a way to send it again
    question.node.classList.remove("pending");
    question.node.classList.add("error");
    if (question.node.querySelector(".resend")) return;
    var again = el("button", { "class": "resend", type: "button" }, "Send again");
    again.addEventListener("click", function () { again.remove(); ask(question); });
    question.node.append(again);
    if (text) notice(text);
  }

  function onFrame(frame) {
    if (frame.type === "start") {
      conversationId = frame.conversation_id;
      localStorage.setItem(storeKey + "conversation", conversationId);
      var waiter = takeWaiter(frame);
      if (waiter) { waiter.messageId = frame.message_id; waiter.node.classList.remove("pending"); }
      answerFor(frame.message_id);
    } else if (frame.type === "held") {
      var held = answerFor(frame.message_id);
      if (held.done || held.seq > 0) return;  // released before this frame arrived
      held.held = true;
      held.node.classList.add("held");
      held.textNode.textContent = "A person is checking this answer before you see it\u2026";
      send.disabled = false;
    } else if (frame.type === "token") {
      var a = answerFor(frame.message_id);
      if (frame.seq <= a.seq) return;           // already shown (replay after reconnect)
      if (a.held) { a.held = false; a.node.classList.remove("held"); a.textNode.textContent = ""; }
      if (frame.seq > a.seq + 1) { resume(frame.message_id, a.seq); return; }
      a.seq = frame.seq;
      a.textNode.textContent += frame.text;
      scrollDown();
    } else if (frame.type === "end") {
      var ans = answerFor(frame.message_id);
      if (!ans.done) renderEnd(ans, frame);
      send.disabled = false;
    } else if (frame.type === "error") {
      send.disabled = false;
      if (frame.message_id && answers[frame.message_id]) {
        var failed = answers[frame.message_id];
        failed.done = true;
        failed.node.classList.add("error");
        failed.node.append(el("div", { "class": "text" }, frame.message));
      } else {
        var w = frame.client_msg_id ? takeWaiter(frame) : null;
        if (w) notSent(w, frame.message || "Your message was not sent.");
        else notice(frame.message || "Something went wrong.");
      }
    } else if (frame.type === "human") {
      showHuman(frame);
    } else if (frame.type === "handoff") {
      onHandoff(frame);
    }
  }

  // ---- a person in the conversation: the assistant is silent, a trainer answers ------------------
  var withPerson = false, lastHandoffNote = null, lastTyping = 0;

  var humanShown = {};
  function showHuman(frame) {
    if (humanShown[frame.message_id]) return;  // replayed by `watch` after a reconnect
    humanShown[frame.message_id] = true;
    var h = bubble("human", frame.text);
    h.node.prepend(el("div", { "class": "agent" }, (frame.agent || "A person") + " \u00b7 person"));
  }

  function onHandoff(frame) {
    if (frame.conversation_id && !conversationId) {
      conversationId = frame.conversation_id;
      localStorage.setItem(storeKey + "conversation", conversationId);
    }
    if (frame.message_id) {  // the question went to the person: no answer will start
      var toPerson = takeWaiter({});
      if (toPerson) toPerson.node.classList.remove("pending");
    }
    send.disabled = false;
    withPerson = frame.status === "waiting" || frame.status === "taken";
    handoff.hidden = withPerson;
    var note = frame.status === "none" ? "" : (frame.message || "");
    if (note && note !== lastHandoffNote) { notice(note); lastHandoffNote = note; }
    if (frame.status === "closed") {  // the next question starts a new conversation
      conversationId = null;
      localStorage.removeItem(storeKey + "conversation");
    }
  }

  input.addEventListener("input", function () {
    var now = Date.now();
    if (withPerson && conversationId && now - lastTyping > 2500) {  // the trainer sees the visitor typing
      lastTyping = now;
      transmit({ type: "typing" });
    }
  });

  function resume(messageId, afterSeq) {
    if (conversationId) transmit({ type: "resume", conversation_id: conversationId, message_id: messageId, after_seq: afterSeq });
  }

  function reconnect(soon) {
    status.textContent = "reconnecting\u2026";
    var delay = soon ? 50 : Math.min(10000, 500 * Math.pow(2, retries++)) * (0.75 + Math.random() * 0.5);
    setTimeout(connect, delay);
  }

  function connect() {
    ticket(false).then(open, function () { reconnect(false); });
  }

  function open(oneUse) {
    var wsUrl = new URL("/ws/chat/", serverUrl);
    wsUrl.protocol = serverUrl.protocol === "https:" ? "wss:" : "ws:";
    wsUrl.searchParams.set("ticket", oneUse);
    socket = new WebSocket(wsUrl.href);
    socket.onopen = function () {
      status.textContent = "";
      send.disabled = false;
      Object.keys(answers).forEach(function (id) { if (!answers[id].done) resume(id, answers[id].seq); });
      // a person's replies sent while this page was away, and whether a person holds the conversation
      if (conversationId) transmit({ type: "watch", conversation_id: conversationId });
      var queued = pending; pending = [];
      queued.forEach(transmit);
      // questions that got no start: sent (again) as they were, the server answers each once
      waiting.forEach(function (question) {
        if (!question.messageId && !question.node.classList.contains("error")) socket.send(JSON.stringify(question.frame));
      });
    };
    socket.onmessage = function (event) { retries = 0; try { onFrame(JSON.parse(event.data)); } catch (e) { /* ignore bad frame */ } };
    socket.onclose = function (event) {
      // 4401: the ticket was refused (expired or used): a new one at once; anything else backs off
      reconnect(event.code === 4401 && retries++ < 3);
    };
  }

  function loadHistory() {
    if (historyLoaded || !conversationId) return Promise.resolve();
    historyLoaded = true;
    return api("/api/v1/conversations/" + conversationId + "/messages/").then(function (r) {
      if (r.status === 404) { conversationId = null; localStorage.removeItem(storeKey + "conversation"); return; }
      var rows = (r.body && r.body.results) || r.body || [];
      rows.forEach(function (m) {
        if (m.role === "user") { bubble("user", m.text); return; }
        if (m.role === "human") { showHuman({ message_id: m.id, text: m.text, agent: m.agent }); return; }
        var a = answerFor(m.id);
        a.textNode.textContent = m.text;
        if (m.status === "complete") {
          renderEnd(a, { message_id: m.id, sources: m.sources, confidence: m.confidence, reuse: m.reuse });
        } else if (m.status === "streaming" || m.status === "held") {
          a.textNode.textContent = ""; // resume replays it (or says it is held) on connect
        }
      });
    });
  }

  var started = false;
  function start() {
    if (started) return;
    started = true;
    api("/api/v1/widget/config/").then(function (r) { if (r.ok && r.body.offline) mode.hidden = false; });
    ensureVisitor().then(loadHistory).then(connect).catch(function () { notice("The chat is unavailable right now."); started = false; });
  }

  // ---- interaction -------------------------------------------------------------------------------
  function openPanel() {
    panel.hidden = false; launcher.hidden = true;
    launcher.setAttribute("aria-expanded", "true");
    start();
    input.focus();
  }
  function closePanel() {
    panel.hidden = true; launcher.hidden = false;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  function submit() {
    var text = input.value.trim();
    if (!text) return;
    var question = bubble("user", text);
    question.frame = { type: "message", text: text, client_msg_id: Date.now().toString(36) + Math.random().toString(36).slice(2) };
    if (conversationId) question.frame.conversation_id = conversationId;
    ask(question);
    input.value = "";
    send.disabled = true;
  }

  // ---- profile: what the assistant remembers, seen, edited and deleted by the visitor ------------
  // Labels and titles come from the server: each deployment configures what its assistant remembers.
  var profile = null;

  function factItem(fact, edits) {
    var item = el("li");
    var text = el("span", {}, fact.title + ": " + fact.value);
    var edit = el("button", { "class": "edit", type: "button", "aria-label": "Edit: " + fact.value }, "\u270e");
    var forget = el("button", { "class": "forget", type: "button", "aria-label": "Forget: " + fact.value }, "\u00d7");
    edit.addEventListener("click", function () {
      var input = el("input", { type: "text", maxlength: "300", "aria-label": fact.title });
      input.value = fact.value;
      text.replaceWith(input);
      edit.remove();
      input.focus();
      edits.push(function () { var v = input.value.trim(); return v === fact.value ? null : { id: fact.id, value: v }; });
    });
    forget.addEventListener("click", function () { saveProfile([{ id: fact.id, value: "" }]); });
    item.append(text, edit, forget);
    return item;
  }

  function newFactInput(field, known, edits) {
    var label = el("label", {}, known ? "More: " + field.title : field.title);
    var input = el("input", { type: "text", maxlength: "300" });
    edits.push(function () { var v = input.value.trim(); return v ? { label: field.label, value: v } : null; });
    label.append(input);
    return label;
  }

  function renderProfile() {
    memory.textContent = "";
    var edits = [];
    var facts = profile.facts || [];
    var list = el("ul", { "aria-label": "Things you told the assistant" });
    facts.forEach(function (fact) { list.append(factItem(fact, edits)); });
    memory.append(el("div", { "class": "status" }, facts.length ? "Things you told me:" : "Nothing you said is remembered yet."), list);
    (profile.labels || []).forEach(function (field) {
      var known = facts.some(function (f) { return f.label === field.label; });
      if (!known || field.many) memory.append(newFactInput(field, known, edits));
    });
    var row = el("div", { "class": "row" });
    var save = el("button", { "class": "save", type: "button" }, "Save");
    var download = el("button", { "class": "download", type: "button" }, "Download my data");
    var wipe = el("button", { "class": "wipe", type: "button" }, "Delete everything");
    save.addEventListener("click", function () {
      saveProfile(edits.map(function (change) { return change(); }).filter(Boolean));
    });
    download.addEventListener("click", downloadData);
    wipe.addEventListener("click", eraseEverything);
    row.append(save, download, wipe);
    memory.append(row);
  }

  // ---- the visitor's data: all of it downloaded as JSON, or all of it erased ---------------------
  function downloadData() {
    ensureVisitor().then(function () {
      return fetch(server + "/api/v1/visitors/me/export/", { headers: { "X-Visitor-Token": token } });
    }).then(function (r) {
      if (!r.ok) throw new Error("no export");
      return r.blob();
    }).then(function (blob) {
      var link = el("a", { href: URL.createObjectURL(blob), download: "my-chat-data.json" });
      root.append(link);
      link.click();
      link.remove();
      setTimeout(function () { URL.revokeObjectURL(link.href); }, 10000);
      status.textContent = "Your data was downloaded";
    }).catch(function () { notice("Your data could not be downloaded right now."); });
  }

  function eraseEverything() {
    var sure = window.confirm("Delete everything: your conversations, messages, feedback and what the assistant " +
      "remembers about you? This cannot be undone.");
    if (!sure) return;
    api("/api/v1/visitors/me/", { method: "DELETE" }).then(function (r) {
      if (!r.ok) { notice("Your data could not be deleted right now; please try again."); return; }
      startOver();
      notice("Everything was deleted: your conversations, messages, feedback and profile. You are a new visitor now.");
    });
  }

  function startOver() {  // the erased visitor's token no longer works: a new visitor on the next connection
    forgetVisitor();
    answers = {}; pending = []; waiting = []; historyLoaded = false; profile = null;
    log.textContent = ""; memory.textContent = ""; memory.hidden = true;
    memoryToggle.setAttribute("aria-expanded", "false");
    if (socket) socket.close();  // onclose reconnects, as a new visitor
  }

  function saveProfile(changes) {
    api("/api/v1/profile/", { method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ facts: changes }) })
      .then(function (r) {
        if (r.ok) { profile = r.body; renderProfile(); status.textContent = "Profile saved"; }
        else notice((r.body && r.body.message) || "The profile could not be saved.");
      });
  }

  memoryToggle.addEventListener("click", function () {
    var show = memory.hidden;
    memoryToggle.setAttribute("aria-expanded", String(show));
    if (!show) { memory.hidden = true; return; }
    ensureVisitor().then(function () { return api("/api/v1/profile/"); }).then(function (r) {
      if (!r.ok) { notice("Your profile is unavailable right now."); return; }
      profile = r.body; renderProfile(); memory.hidden = false;
    });
  });

  launcher.addEventListener("click", openPanel);
  close.addEventListener("click", closePanel);
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") closePanel(); });
  form.addEventListener("submit", function (e) { e.preventDefault(); submit(); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); if (!send.disabled) submit(); }
  });
  handoff.addEventListener("click", function () {
    if (!conversationId) { notice("Ask a question first; then a person can take over."); return; }
    transmit({ type: "handoff", conversation_id: conversationId });
  });

  function mount() {
    document.body.appendChild(host);
    if (data.open === "true") openPanel();
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
