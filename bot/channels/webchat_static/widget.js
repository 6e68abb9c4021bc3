/*
 * After-sales chat widget: plain JavaScript, no framework, no build step, nothing from a CDN.
 *
 * Embed with one script tag and a small config object:
 *
 *   <script src="https://bot.example.com/webhooks/webchat/widget.js"></script>
 *   <script>
 *     AfterSalesChat.init({serverUrl: "https://bot.example.com", language: "zh", title: "售后服务",
 *                          primaryColor: "#0f5c7a", accentColor: "#f28c28"});
 *   </script>
 *
 * or with data- attributes on the script tag alone (it then starts by itself):
 *
 *   <script src=".../widget.js" data-language="en" data-title="Service desk" data-primary-color="#0f5c7a"></script>
 *
 * Options: serverUrl (default: where widget.js came from), language ("zh" | "en"), title (text, or
 * {zh: ..., en: ...}), primaryColor, accentColor, open (start opened), basePath ("/webhooks/webchat"),
 * socketPath ("/socket.io").
 *
 * It loads widget.css and the socket.io client (socket.io.min.js, socket.io-client 4, MIT) from the same server,
 * keeps the conversation id in localStorage (a reload continues the same conversation and shows it again), sends
 * {"language": "zh"|"en"} as message metadata, and uploads photos to <basePath>/upload.
 */
(function (window, document) {
  "use strict";
  if (window.AfterSalesChat && window.AfterSalesChat.version) return;

  var VERSION = "1.0.0";
  var MAX_PHOTO_BYTES = 5 * 1024 * 1024;
  var PHOTO_TYPES = ["image/jpeg", "image/png", "image/webp"];
  var REPLY_TIMEOUT_MS = 60000;
  var PRESENCE_POLL_MS = 8000; // while waiting for an agent: the place in the queue moves
  var currentScript = document.currentScript;

  var UI = {
    zh: {
      launcher: "在线客服",
      openChat: "打开在线客服",
      closeChat: "关闭对话窗口",
      title: "售后服务",
      subtitle: "在线 · 通常几秒内回复",
      connecting: "正在连接…",
      reconnecting: "连接中断，正在重新连接…",
      log: "对话记录",
      welcome: "您好！我是售后服务助手。产品故障、报修、退换货、投诉，都可以直接告诉我。",
      placeholder: "请输入您的问题…",
      input: "输入消息，按 Enter 发送，Shift+Enter 换行",
      send: "发送",
      attach: "上传照片",
      typing: "客服正在输入…",
      quick: "快捷回复",
      you: "我：",
      bot: "智能助手：",
      assistant: "智能助手",
      agentBadge: "客服",
      agentWith: "客服 {name} 正在为您服务",
      waitingAhead: "正在为您转接人工客服 · 您前面还有 {n} 位",
      waitingNext: "正在为您转接人工客服 · 您是下一位",
      photo: "照片",
      photoAlt: "您发送的照片",
      uploading: "正在上传照片…",
      tooLarge: "照片太大了：每张不超过 5 MB。请压缩后再发送。",
      badType: "只能发送 JPG、PNG 或 WebP 格式的照片。",
      uploadFailed: "照片没能上传，请稍后再试。",
      noReply: "暂时没有收到回复，请稍后再试，或留下电话由我们回电。",
      switchLang: "EN",
      switchLangLabel: "Switch to English"
    },
    en: {
      launcher: "Chat with us",
      openChat: "Open the service chat",
      closeChat: "Close the chat window",
      title: "After-sales service",
      subtitle: "Online · usually replies in seconds",
      connecting: "Connecting…",
      reconnecting: "Connection lost, reconnecting…",
      log: "Conversation",
      welcome: "Hello! I'm the after-sales assistant. Tell me about a fault, a repair, a return or a complaint.",
      placeholder: "Type your message…",
      input: "Type a message; Enter sends, Shift+Enter adds a line",
      send: "Send",
      attach: "Upload a photo",
      typing: "The assistant is typing…",
      quick: "Quick replies",
      you: "You: ",
      bot: "Assistant: ",
      assistant: "Assistant",
      agentBadge: "Agent",
      agentWith: "{name} from the service team is with you",
      waitingAhead: "Waiting for an agent · {n} customers ahead of you",
      waitingAheadOne: "Waiting for an agent · 1 customer ahead of you",
      waitingNext: "Waiting for an agent · you are next",
      photo: "Photo",
      photoAlt: "The photo you sent",
      uploading: "Uploading the photo…",
      tooLarge: "That photo is too large: up to 5 MB each. Please send a smaller one.",
      badType: "Only photos in JPG, PNG or WebP format can be sent.",
      uploadFailed: "The photo could not be uploaded. Please try again later.",
      noReply: "No reply yet. Please try again in a moment, or leave a phone number and we will call you.",
      switchLang: "中文",
      switchLangLabel: "切换到中文"
    }
  };

  var ICONS = {
    chat: '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z" fill="currentColor"/></svg>',
    close: '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M6 6l12 12M18 6L6 18" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" fill="none"/></svg>',
    send: '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M3 20l18-8L3 4v6l12 2-12 2z" fill="currentColor"/></svg>',
    camera: '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M9 4h6l1.5 2H20a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h3.5z" fill="none" stroke="currentColor" stroke-width="1.8"/><circle cx="12" cy="13" r="3.6" fill="none" stroke="currentColor" stroke-width="1.8"/></svg>'
  };

  // ------------------------------------------------------------------------------------------ helpers
  function el(tag, className, attrs) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (attrs) {
      for (var key in attrs) {
        if (Object.prototype.hasOwnProperty.call(attrs, key) && attrs[key] !== undefined && attrs[key] !== null) {
          node.setAttribute(key, attrs[key]);
        }
      }
    }
    return node;
  }

  function normLang(value) {
    value = String(value || "").toLowerCase();
    if (value.indexOf("en") === 0) return "en";
    if (value.indexOf("zh") === 0) return "zh";
    return null;
  }

  function storageGet(store, key) {
    try { return window[store].getItem(key); } catch (e) { return null; }
  }

  function storageSet(store, key, value) {
    try {
      if (value === null) window[store].removeItem(key); else window[store].setItem(key, value);
    } catch (e) { /* private mode: the conversation simply does not survive a reload */ }
  }

  function scriptOrigin() {
    try {
      if (currentScript && currentScript.src) return new URL(currentScript.src, window.location.href).origin;
    } catch (e) { /* fall through */ }
    return window.location.origin;
  }

  function dataConfig() {
    if (!currentScript) return {};
    var d = currentScript.dataset || {};
    var cfg = {};
    if (d.serverUrl) cfg.serverUrl = d.serverUrl;
    if (d.language) cfg.language = d.language;
    if (d.title) cfg.title = d.title;
    if (d.primaryColor) cfg.primaryColor = d.primaryColor;
    if (d.accentColor) cfg.accentColor = d.accentColor;
    if (d.open) cfg.open = d.open === "true";
    return cfg;
  }

  // Loads the vendored socket.io client without clobbering a global `io` the host page may have.
  function loadSocketIo(url, done) {
    if (window.AfterSalesChat && window.AfterSalesChat._io) return done(window.AfterSalesChat._io);
    var previous = window.io;
    var hadPrevious = Object.prototype.hasOwnProperty.call(window, "io");
    var script = el("script", null, {src: url, async: "async"});
    script.onload = function () {
      var ours = window.io;
      if (hadPrevious) window.io = previous; else { try { delete window.io; } catch (e) { window.io = undefined; } }
      api._io = ours;
      done(ours);
    };
    script.onerror = function () { done(null); };
    document.head.appendChild(script);
  }

  // ------------------------------------------------------------------------------------------ widget
  function Widget(options) {
    var data = dataConfig();
    var opts = {};
    var key;
    for (key in data) opts[key] = data[key];
    for (key in (options || {})) if (options[key] !== undefined) opts[key] = options[key];
    this.serverUrl = String(opts.serverUrl || scriptOrigin()).replace(/\/+$/, "");
    this.basePath = opts.basePath || "/webhooks/webchat";
    this.socketPath = opts.socketPath || "/socket.io";
    this.titleOption = opts.title;
    this.storageKey = "afterSalesChat:" + this.serverUrl;
    this.language = normLang(storageGet("localStorage", this.storageKey + ":language")) || normLang(opts.language) || "zh";
    this.sessionId = storageGet("localStorage", this.storageKey + ":session");
    this.socket = null;
    this.ready = false;
    this.queue = [];
    this.waiting = 0;
    this.replyTimer = null;
    this.historyLoaded = false;
    this.isOpen = false;
    this.presence = {state: "assistant"}; // who holds the conversation: assistant | waiting | agent
    this.presenceTimer = null;
    this.lastSpeaker = "assistant:"; // the welcome line is the assistant's
    this.build(opts);
    if (opts.open || storageGet("sessionStorage", this.storageKey + ":open") === "1") this.open(false);
  }

  Widget.prototype.t = function (key, values) {
    var text = (UI[this.language] || UI.zh)[key];
    if (text === undefined) text = UI.zh[key];
    if (values) {
      for (var name in values) {
        if (Object.prototype.hasOwnProperty.call(values, name)) text = text.split("{" + name + "}").join(values[name]);
      }
    }
    return text;
  };

  Widget.prototype.title = function () {
    var title = this.titleOption;
    if (title && typeof title === "object") return title[this.language] || title.zh || title.en || this.t("title");
    return title || this.t("title");
  };

  Widget.prototype.build = function (opts) {
    var self = this;
    var root = el("div", "asc-root", {"data-asc-widget": VERSION});
    root.style.visibility = "hidden"; // until widget.css has loaded
    if (opts.primaryColor) root.style.setProperty("--asc-primary", opts.primaryColor);
    if (opts.accentColor) root.style.setProperty("--asc-accent", opts.accentColor);

    var launcher = el("button", "asc-launcher", {type: "button", "aria-expanded": "false", "aria-controls": "asc-window"});
    launcher.innerHTML = ICONS.chat + '<span class="asc-launcher-text"></span>';

    var win = el("section", "asc-window", {id: "asc-window", role: "dialog", "aria-modal": "false",
                                           "aria-labelledby": "asc-title"});
    win.hidden = true;

    var header = el("header", "asc-header");
    var heading = el("div", "asc-heading");
    var h = el("h2", "asc-title", {id: "asc-title"});
    var status = el("p", "asc-status", {role: "status"});
    heading.appendChild(h);
    heading.appendChild(status);
    var langBtn = el("button", "asc-lang", {type: "button"});
    var closeBtn = el("button", "asc-close", {type: "button"});
    closeBtn.innerHTML = ICONS.close;
    header.appendChild(heading);
    header.appendChild(langBtn);
    header.appendChild(closeBtn);

    var log = el("div", "asc-log", {role: "log", "aria-live": "polite", "aria-relevant": "additions", tabindex: "0"});
    var welcome = el("div", "asc-msg asc-msg--bot asc-msg--assistant asc-welcome", {"data-speaker": "assistant"});
    welcome.appendChild(this.speakerLabel({speaker: "assistant"}, true));
    welcome.appendChild(el("div", "asc-bubble"));
    log.appendChild(welcome);

    var typing = el("div", "asc-typing", {role: "status"});
    typing.hidden = true;
    typing.innerHTML = '<span class="asc-dots" aria-hidden="true"><i></i><i></i><i></i></span><span class="asc-sr"></span>';

    var form = el("form", "asc-composer", {novalidate: "novalidate"});
    var attach = el("button", "asc-attach", {type: "button"});
    attach.innerHTML = ICONS.camera;
    var file = el("input", "asc-file", {type: "file", accept: "image/*", tabindex: "-1", "aria-hidden": "true"});
    var input = el("textarea", "asc-input", {id: "asc-input", rows: "1", maxlength: "2000", autocomplete: "off"});
    var send = el("button", "asc-send", {type: "submit"});
    send.innerHTML = ICONS.send;
    form.appendChild(attach);
    form.appendChild(file);
    form.appendChild(input);
    form.appendChild(send);

    win.appendChild(header);
    win.appendChild(log);
    win.appendChild(typing);
    win.appendChild(form);
    root.appendChild(win);
    root.appendChild(launcher);
    document.body.appendChild(root);

    this.el = {root: root, launcher: launcher, win: win, title: h, status: status, lang: langBtn, close: closeBtn,
               log: log, welcome: welcome, typing: typing, form: form, attach: attach, file: file, input: input,
               send: send};

    var css = el("link", null, {rel: "stylesheet", href: this.serverUrl + this.basePath + "/widget.css"});
    css.onload = css.onerror = function () { root.style.visibility = ""; };
    document.head.appendChild(css);

    launcher.addEventListener("click", function () { if (self.isOpen) self.close(); else self.open(true); });
    closeBtn.addEventListener("click", function () { self.close(); });
    langBtn.addEventListener("click", function () { self.setLanguage(self.language === "zh" ? "en" : "zh"); });
    win.addEventListener("keydown", function (event) {
      if (event.key === "Escape" || event.key === "Esc") {
        event.preventDefault();
        self.close();
      }
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      self.submit();
    });
    input.addEventListener("keydown", function (event) {
      // Enter sends, Shift+Enter is a new line; Enter that confirms an IME composition (pinyin) does not send.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        self.submit();
      }
    });
    input.addEventListener("input", function () { self.autosize(); });
    attach.addEventListener("click", function () { file.click(); });
    file.addEventListener("change", function () {
      if (file.files && file.files[0]) self.uploadPhoto(file.files[0]);
      file.value = "";
    });
    log.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest(".asc-qr") : null;
      if (button && !button.disabled) self.pressQuickReply(button);
    });
    this.applyTexts();
  };

  Widget.prototype.applyTexts = function () {
    var e = this.el;
    e.root.setAttribute("lang", this.language === "zh" ? "zh-CN" : "en");
    e.launcher.setAttribute("aria-label", this.isOpen ? this.t("closeChat") : this.t("openChat"));
    e.launcher.querySelector(".asc-launcher-text").textContent = this.t("launcher");
    e.title.textContent = this.title();
    e.lang.textContent = this.t("switchLang");
    e.lang.setAttribute("aria-label", this.t("switchLangLabel"));
    e.lang.setAttribute("lang", this.language === "zh" ? "en" : "zh-CN");
    e.close.setAttribute("aria-label", this.t("closeChat"));
    e.log.setAttribute("aria-label", this.t("log"));
    e.welcome.querySelector(".asc-bubble").textContent = this.t("welcome");
    var labels = e.log.querySelectorAll(".asc-speaker--assistant .asc-from");
    for (var j = 0; j < labels.length; j++) labels[j].textContent = this.t("assistant");
    var badges = e.log.querySelectorAll(".asc-badge");
    for (var k = 0; k < badges.length; k++) badges[k].textContent = this.t("agentBadge");
    e.typing.querySelector(".asc-sr").textContent = this.t("typing");
    e.attach.setAttribute("aria-label", this.t("attach"));
    e.attach.setAttribute("title", this.t("attach"));
    e.input.setAttribute("aria-label", this.t("input"));
    e.input.setAttribute("placeholder", this.t("placeholder"));
    e.send.setAttribute("aria-label", this.t("send"));
    e.send.setAttribute("title", this.t("send"));
    var groups = e.log.querySelectorAll(".asc-quick");
    for (var i = 0; i < groups.length; i++) groups[i].setAttribute("aria-label", this.t("quick"));
    this.showStatus(this.statusKey || "subtitle");
  };

  Widget.prototype.showStatus = function (key) {
    this.statusKey = key;
    var p = this.presence || {state: "assistant"};
    var text = this.t(key);
    var state = key;
    if (key === "subtitle" && p.state === "agent" && p.agent_name) {
      text = this.t("agentWith", {name: p.agent_name});
      state = "agent";
    } else if (key === "subtitle" && p.state === "waiting") {
      var ahead = Math.max(0, Number(p.ahead) || 0);
      text = ahead === 0 ? this.t("waitingNext") : ahead === 1 && UI[this.language].waitingAheadOne
        ? this.t("waitingAheadOne") : this.t("waitingAhead", {n: ahead});
      state = "waiting";
    }
    this.el.status.textContent = text;
    this.el.status.setAttribute("data-state", state);
    this.el.root.setAttribute("data-presence", p.state || "assistant");
  };

  // Who holds the conversation (pushed as the socket event `presence`, read from <basePath>/presence on start and
  // while waiting): the header says so.
  Widget.prototype.setPresence = function (presence) {
    var self = this;
    if (!presence || !presence.state) return;
    this.presence = presence;
    clearTimeout(this.presenceTimer);
    if (presence.state === "waiting") {
      this.presenceTimer = setTimeout(function () { self.fetchPresence(); }, PRESENCE_POLL_MS);
    }
    if (this.statusKey === "subtitle") this.showStatus("subtitle");
  };

  Widget.prototype.fetchPresence = function () {
    var self = this;
    if (!this.sessionId) return;
    var url = this.serverUrl + this.basePath + "/presence?session_id=" + encodeURIComponent(this.sessionId) +
      "&language=" + this.language;
    fetch(url, {credentials: "omit"}).then(function (resp) {
      return resp.ok ? resp.json() : null;
    }).then(function (body) { if (body) self.setPresence(body); }).catch(function () { /* next time */ });
  };

  // After the bot's messages of a turn (one may have put the customer in the queue): look once more.
  Widget.prototype.schedulePresence = function () {
    var self = this;
    clearTimeout(this.presenceSoon);
    this.presenceSoon = setTimeout(function () { self.fetchPresence(); }, 700);
  };

  Widget.prototype.setLanguage = function (language) {
    language = normLang(language);
    if (!language) return;
    this.language = language;
    storageSet("localStorage", this.storageKey + ":language", language);
    this.applyTexts();
  };

  Widget.prototype.open = function (focus) {
    this.isOpen = true;
    this.el.win.hidden = false;
    this.el.root.classList.add("asc-open");
    this.el.launcher.setAttribute("aria-expanded", "true");
    this.el.launcher.setAttribute("aria-label", this.t("closeChat"));
    storageSet("sessionStorage", this.storageKey + ":open", "1");
    this.connect();
    this.scrollDown();
    if (focus !== false) this.el.input.focus();
  };

  Widget.prototype.close = function () {
    this.isOpen = false;
    this.el.win.hidden = true;
    this.el.root.classList.remove("asc-open");
    this.el.launcher.setAttribute("aria-expanded", "false");
    this.el.launcher.setAttribute("aria-label", this.t("openChat"));
    storageSet("sessionStorage", this.storageKey + ":open", null);
    this.el.launcher.focus();
  };

  Widget.prototype.autosize = function () {
    var input = this.el.input;
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 120) + "px";
  };

  Widget.prototype.scrollDown = function () {
    var log = this.el.log;
    log.scrollTop = log.scrollHeight;
  };

  // ------------------------------------------------------------------------------------------ connection
  Widget.prototype.connect = function () {
    var self = this;
    if (this.socket || this.connecting) return;
    this.connecting = true;
    this.showStatus("connecting");
    loadSocketIo(this.serverUrl + this.basePath + "/socket.io.min.js", function (io) {
      self.connecting = false;
      if (!io) {
        self.showStatus("reconnecting");
        return;
      }
      var socket = io(self.serverUrl, {path: self.socketPath});
      self.socket = socket;
      socket.on("connect", function () {
        socket.emit("session_request", {session_id: self.sessionId || null});
      });
      socket.on("session_confirm", function (sessionId) { self.onSession(sessionId); });
      socket.on("bot_uttered", function (message) { self.onBotMessage(message); });
      socket.on("presence", function (presence) { self.setPresence(presence); });
      socket.on("disconnect", function () {
        self.ready = false;
        self.showStatus("reconnecting");
      });
      socket.on("connect_error", function () { self.showStatus("reconnecting"); });
    });
  };

  Widget.prototype.onSession = function (sessionId) {
    var self = this;
    if (typeof sessionId === "object" && sessionId) sessionId = sessionId.session_id;
    var known = sessionId && sessionId === this.sessionId;
    this.sessionId = sessionId;
    storageSet("localStorage", this.storageKey + ":session", sessionId);
    this.el.root.setAttribute("data-session-id", sessionId);
    var finish = function () {
      self.ready = true;
      self.showStatus("subtitle");
      self.fetchPresence();
      var queued = self.queue;
      self.queue = [];
      for (var i = 0; i < queued.length; i++) self.emitMessage(queued[i]);
    };
    if (!known) return finish();
    this.fetchHistory(function () { finish(); });
  };

  Widget.prototype.fetchHistory = function (done) {
    var self = this;
    var url = this.serverUrl + this.basePath + "/history?session_id=" + encodeURIComponent(this.sessionId) +
      "&language=" + this.language;
    fetch(url, {credentials: "omit"}).then(function (resp) {
      return resp.ok ? resp.json() : null;
    }).then(function (body) {
      if (body && body.messages && body.messages.length && !self.waiting) self.renderHistory(body.messages);
      done();
    }).catch(function () { done(); });
  };

  Widget.prototype.renderHistory = function (messages) {
    var log = this.el.log;
    while (log.lastChild && log.lastChild !== this.el.welcome) log.removeChild(log.lastChild);
    this.lastSpeaker = "assistant:";
    for (var i = 0; i < messages.length; i++) {
      var m = messages[i];
      if (m.kind === "photo") this.addPhoto(null, m.text, true);
      else this.addMessage(m.sender === "user" ? "user" : "bot", m.text, {history: true, speaker: m.speaker,
                                                                          agentName: m.agent_name});
      if (m.buttons && m.buttons.length) this.addQuickReplies(m.buttons);
    }
    this.el.root.setAttribute("data-history", String(messages.length));
    this.scrollDown();
  };

  // ------------------------------------------------------------------------------------------ messages
  // The line above a run of bot messages: "智能助手" for the assistant, a "客服" badge and the name for an agent.
  Widget.prototype.speakerLabel = function (who, shown) {
    var agent = who.speaker === "agent";
    var label = el("div", "asc-speaker asc-speaker--" + (agent ? "agent" : "assistant"), {"aria-hidden": "true"});
    if (agent) {
      var badge = el("span", "asc-badge");
      badge.textContent = this.t("agentBadge");
      label.appendChild(badge);
    }
    var from = el("span", "asc-from");
    from.textContent = agent ? (who.agentName || "") : this.t("assistant");
    label.appendChild(from);
    if (!shown) label.hidden = true;
    return label;
  };

  Widget.prototype.addMessage = function (who, text, options) {
    options = options || {};
    var speaker = who === "bot" ? (options.speaker === "agent" ? "agent" : "assistant") : null;
    var msg = el("div", "asc-msg asc-msg--" + who + (speaker ? " asc-msg--" + speaker : "") +
      (options.history ? " asc-msg--history" : ""), speaker ? {"data-speaker": speaker} : null);
    var sr = el("span", "asc-sr");
    if (speaker === "agent") {
      sr.textContent = this.t("agentBadge") + " " + (options.agentName || "") + (this.language === "zh" ? "：" : ": ");
      msg.setAttribute("data-agent-name", options.agentName || "");
    } else {
      sr.textContent = who === "user" ? this.t("you") : who === "bot" ? this.t("bot") : "";
    }
    var bubble = el("div", "asc-bubble");
    bubble.textContent = text;
    msg.appendChild(sr);
    if (speaker) {
      var key = speaker + ":" + (options.agentName || "");
      msg.appendChild(this.speakerLabel({speaker: speaker, agentName: options.agentName}, key !== this.lastSpeaker));
      this.lastSpeaker = key;
    }
    msg.appendChild(bubble);
    this.el.log.appendChild(msg);
    this.scrollDown();
    return msg;
  };

  Widget.prototype.addNotice = function (text) {
    var msg = el("div", "asc-msg asc-msg--notice", {role: "alert"});
    var bubble = el("div", "asc-bubble");
    bubble.textContent = text;
    msg.appendChild(bubble);
    this.el.log.appendChild(msg);
    this.scrollDown();
    return msg;
  };

  Widget.prototype.addQuickReplies = function (buttons) {
    var group = el("div", "asc-quick", {role: "group", "aria-label": this.t("quick")});
    for (var i = 0; i < buttons.length; i++) {
      var b = buttons[i];
      if (!b || !b.title) continue;
      var btn = el("button", "asc-qr", {type: "button", "data-payload": b.payload || b.title});
      btn.textContent = b.title;
      group.appendChild(btn);
    }
    if (group.childNodes.length) this.el.log.appendChild(group);
    this.scrollDown();
  };

  Widget.prototype.clearQuickReplies = function () {
    var groups = this.el.log.querySelectorAll(".asc-quick");
    for (var i = 0; i < groups.length; i++) groups[i].parentNode.removeChild(groups[i]);
  };

  Widget.prototype.onBotMessage = function (message) {
    if (!message) return;
    this.stopTyping();
    if (message.speaker === "agent" && message.agent_name &&
        (this.presence.state !== "agent" || this.presence.agent_name !== message.agent_name)) {
      this.setPresence({state: "agent", agent_name: message.agent_name});
    }
    if (message.text) this.addMessage("bot", message.text, {speaker: message.speaker, agentName: message.agent_name});
    if (message.speaker !== "agent") this.schedulePresence();
    var att = message.attachment;
    if (att && att.type === "image" && att.payload && att.payload.src) {
      var msg = el("div", "asc-msg asc-msg--bot");
      var img = el("img", "asc-photo", {src: att.payload.src, alt: ""});
      msg.appendChild(img);
      this.el.log.appendChild(msg);
    }
    var replies = message.quick_replies || message.buttons;
    if (replies && replies.length) this.addQuickReplies(replies);
    this.scrollDown();
  };

  Widget.prototype.startTyping = function () {
    var self = this;
    this.waiting += 1;
    this.el.typing.hidden = false;
    this.el.root.setAttribute("data-waiting", "true");
    clearTimeout(this.replyTimer);
    this.replyTimer = setTimeout(function () {
      if (self.waiting) {
        self.stopTyping();
        self.addNotice(self.t("noReply"));
      }
    }, REPLY_TIMEOUT_MS);
  };

  Widget.prototype.stopTyping = function () {
    this.waiting = 0;
    clearTimeout(this.replyTimer);
    this.el.typing.hidden = true;
    this.el.root.removeAttribute("data-waiting");
  };

  Widget.prototype.submit = function () {
    var text = this.el.input.value.replace(/^\s+|\s+$/g, "");
    if (!text) return;
    this.el.input.value = "";
    this.autosize();
    this.send(text, text);
  };

  Widget.prototype.pressQuickReply = function (button) {
    var title = button.textContent;
    this.clearQuickReplies();
    this.send(button.getAttribute("data-payload"), title);
    this.el.input.focus();
  };

  // `shown` is what the customer sees in their bubble (a button's title); `payload` is what the bot gets.
  Widget.prototype.send = function (payload, shown) {
    this.clearQuickReplies();
    this.addMessage("user", shown);
    this.startTyping();
    var message = {message: payload, display: shown !== payload ? shown : null};
    if (this.ready) this.emitMessage(message); else { this.queue.push(message); this.connect(); }
  };

  Widget.prototype.emitMessage = function (message) {
    var metadata = {language: this.language};
    if (message.display) metadata.display_text = message.display;
    this.socket.emit("user_uttered", {message: message.message, session_id: this.sessionId, metadata: metadata});
  };

  // ------------------------------------------------------------------------------------------ photos
  Widget.prototype.addPhoto = function (fileObj, label, history) {
    var msg = el("div", "asc-msg asc-msg--user asc-msg--photo" + (history ? " asc-msg--history" : ""));
    var sr = el("span", "asc-sr");
    sr.textContent = this.t("you");
    var bubble = el("div", "asc-bubble");
    if (fileObj && window.URL && URL.createObjectURL) {
      var img = el("img", "asc-photo", {alt: this.t("photoAlt")});
      img.src = URL.createObjectURL(fileObj);
      bubble.appendChild(img);
    } else {
      var icon = el("span", "asc-photo-icon");
      icon.innerHTML = ICONS.camera;
      bubble.appendChild(icon);
      bubble.appendChild(document.createTextNode(label || this.t("photo")));
    }
    msg.appendChild(sr);
    msg.appendChild(bubble);
    this.el.log.appendChild(msg);
    this.scrollDown();
    return msg;
  };

  Widget.prototype.uploadPhoto = function (fileObj) {
    var self = this;
    var type = String(fileObj.type || "").toLowerCase();
    if (type && PHOTO_TYPES.indexOf(type) < 0) return this.addNotice(this.t("badType"));
    if (fileObj.size > MAX_PHOTO_BYTES) return this.addNotice(this.t("tooLarge"));
    if (!this.sessionId || !this.ready) {
      // Not connected yet: try again once the session is confirmed.
      this.connect();
      var retry = function () { if (self.ready) self.uploadPhoto(fileObj); else setTimeout(retry, 300); };
      return setTimeout(retry, 300);
    }
    var msg = this.addPhoto(fileObj);
    var progress = el("div", "asc-progress", {role: "status"});
    progress.textContent = this.t("uploading");
    msg.appendChild(progress);
    this.startTyping();
    var form = new FormData();
    form.append("session_id", this.sessionId);
    form.append("language", this.language);
    if (this.socket && this.socket.id) form.append("sid", this.socket.id);
    form.append("file", fileObj, fileObj.name || "photo");
    fetch(this.serverUrl + this.basePath + "/upload", {method: "POST", body: form, credentials: "omit"})
      .then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (body) { return {ok: resp.ok, body: body}; });
      })
      .then(function (result) {
        if (progress.parentNode) progress.parentNode.removeChild(progress);
        self.stopTyping();
        if (result.ok && result.body && result.body.message) {
          msg.setAttribute("data-ticket", result.body.ticket || "");
          self.addMessage("bot", result.body.message);
        } else {
          msg.classList.add("asc-msg--failed");
          self.addNotice((result.body && result.body.message) || self.t("uploadFailed"));
        }
      })
      .catch(function () {
        if (progress.parentNode) progress.parentNode.removeChild(progress);
        self.stopTyping();
        msg.classList.add("asc-msg--failed");
        self.addNotice(self.t("uploadFailed"));
      });
  };

  // ------------------------------------------------------------------------------------------ public API
  var instance = null;
  var started = false;
  var api = {
    version: VERSION,
    init: function (options) {
      if (started) return api;
      started = true;
      var start = function () { instance = new Widget(options); api.widget = instance; };
      if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
      return api;
    },
    open: function () { if (instance) instance.open(true); },
    close: function () { if (instance) instance.close(); },
    setLanguage: function (language) { if (instance) instance.setLanguage(language); },
    send: function (text) { if (instance && text) instance.send(String(text), String(text)); },
    sessionId: function () { return instance ? instance.sessionId : null; }
  };
  window.AfterSalesChat = api;

  // Configured entirely by data- attributes: start by itself.
  if (currentScript && currentScript.dataset && (currentScript.dataset.language || currentScript.dataset.title ||
      currentScript.dataset.serverUrl || currentScript.dataset.autoInit === "true")) {
    api.init({});
  }
})(window, document);
