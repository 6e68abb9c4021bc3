/* Agent console: sign in, watch the queue, open a case, take it over, reply, hand back or close. Plain JS, no
   framework. The API is described at ./openapi.json; every call carries the bearer token kept in sessionStorage. */
(function () {
  "use strict";

  var I18N = {
    zh: {
      title: "售后客服工作台", sign_in: "客服登录", name: "账号", password: "密码", sign_in_button: "登录",
      bad_credentials: "账号或密码不正确", logout: "退出", queue: "排队中的会话", oldest_first: "最早优先",
      newest_first: "最新优先", queue_empty: "暂无排队的会话", pick_conversation: "从左侧选择一个会话",
      claim: "接管会话", handback: "交还机器人", close_case: "结案", send: "发送", canned: "常用回复…",
      reply_placeholder: "输入回复，Enter 发送，Shift+Enter 换行", note_placeholder: "内部备注（客户看不到）",
      add_note: "添加备注", waiting: "等待中", claimed: "已接管", returned: "已交还", closed: "已结案",
      position: "第 {n} 位", wait_min: "预计 {n} 分钟", waited: "已等 {t}", by: "由 {name} 接管",
      online: "在线客服 {n} 人", desk_open: "营业中", desk_closed: "非营业时间", callback: "回电 {t}",
      customer: "客户", bot: "机器人", agent: "客服", paused: "—— 客服已接管，机器人暂停 ——",
      resumed: "—— 已交还机器人 ——", lang_toggle: "English",
      sec_customer: "客户", sec_handoff: "转人工", sec_purchase: "购买与保修", sec_facts: "已收集的信息",
      sec_steps: "六步进度", sec_remedy: "处理方案", sec_account: "客户原话", sec_history: "历史工单与上门",
      sec_notes: "内部备注", f_name: "姓名", f_phone: "电话", f_known: "老客户", yes: "是", no: "否",
      f_reason: "原因", f_anger: "情绪", f_requested: "请求时间", f_channel: "渠道", f_language: "语言",
      f_callback: "约定回电", f_order: "订单号", f_model: "型号", f_product: "产品", f_bought: "购买日期",
      f_delivered: "送达日期", f_shop: "购买渠道", f_price: "价格", f_warranty: "保修", in_warranty: "在保",
      out_warranty: "已过保", until: "至 {d}", f_eligible: "可选方案", f_symptom: "故障", f_address: "地址",
      f_contact_time: "联系时间", f_impact: "造成影响", f_proposed: "已提方案", f_clause: "依据条款",
      f_answer: "客户答复", accepted: "已接受", rejected: "已拒绝", pending: "未答复", none: "—",
      no_purchase: "未关联订单", no_history: "没有更早的工单或上门记录", no_notes: "暂无备注",
      step_vent: "倾听", step_apologise: "致歉", step_gather: "收集信息", step_propose: "提出方案",
      step_opinion: "征求意见", step_follow_up: "跟进",
      hint_waiting: "接管后才能回复；接管期间机器人不会再回复该客户。",
      hint_claimed: "您正在与客户对话，机器人已暂停。", hint_other: "该会话由 {name} 处理。",
      hint_done: "该会话已结束。", hint_rest: "REST 客户没有推送：消息记录在会话中，客户端轮询获取。",
      sent_failed: "消息已记录，但未能推送到客户渠道（{via}）。",
      sent_held: "客户超过48小时未发消息，微信不允许现在推送：消息已保留，客户下次发消息时会先收到。", error: "出错了：{e}",
      forbidden: "您无权操作这个会话", conflict: "状态已变化，请刷新", minutes: "{n} 分钟", seconds: "{n} 秒",
      hours: "{h} 小时 {m} 分",
      reasons: { customer_request: "客户要求人工", anger: "客户情绪激动", safety: "安全隐患",
        rejected_twice: "两次拒绝方案", no_remedy: "没有可行方案", failed_fact: "信息多次确认失败",
        repeat_complaint: "重复投诉", installation_no_order: "安装无订单", fallback: "多次未听懂" },
      remedies: { "return": "退货退款", exchange: "换新机", free_repair: "免费维修", paid_repair: "付费维修",
        repair_at_cost: "按成本价维修", inspection: "上门检测", self_check: "自助排查", installation: "免费安装" },
      channels: { rest: "REST", telegram: "Telegram", webchat: "网页聊天", wechat: "微信" },
      products: { air_conditioner: "空调", fridge: "冰箱", washing_machine: "洗衣机", water_heater: "热水器",
        tv: "电视", range_hood: "油烟机", dishwasher: "洗碗机", gas_hob: "燃气灶", microwave: "微波炉" },
      languages: { zh: "中文", en: "英文" },
      desk_zone: "工作台时区 {z}", your_time: "您所在时区（{zone}）：{t}", live_on: "实时", live_off: "重新连接中…",
      alert_sound: "提醒", new_case: "新的排队会话：{ticket}", transfer: "转接", transfer_to: "转给",
      transfer_note: "转接说明（必填，对方可见）", transfer_send: "确认转接", cancel: "取消", to_queue: "退回排队",
      online_agent: "在线", offline_agent: "离线", transferred: "{from} 转来：{note}", transferred_queue: "{from} 退回排队：{note}",
      close_note: "处理结果（必填，记入工单）", close_confirm: "确认结案：工单将标记为已解决", close_send: "确认结案",
      close_need_note: "请填写处理结果", close_need_confirm: "请勾选确认", closed_marker: "—— 客服已结案 ——",
      transfer_need_note: "请填写转接说明", routed: "为您优先", held_for: "优先分配给会{lang}的客服"
    },
    en: {
      title: "After-sales agent console", sign_in: "Agent sign-in", name: "Name", password: "Password",
      sign_in_button: "Sign in", bad_credentials: "Wrong name or password", logout: "Sign out",
      queue: "Queue", oldest_first: "Oldest first", newest_first: "Newest first", queue_empty: "Nobody is waiting",
      pick_conversation: "Pick a conversation on the left", claim: "Take over", handback: "Hand back to bot",
      close_case: "Close case", send: "Send", canned: "Canned replies…",
      reply_placeholder: "Type a reply: Enter sends, Shift+Enter for a new line",
      note_placeholder: "Internal note (the customer never sees it)", add_note: "Add note", waiting: "waiting",
      claimed: "taken", returned: "handed back", closed: "closed", position: "#{n} in line",
      wait_min: "~{n} min", waited: "waited {t}", by: "taken by {name}", online: "{n} agents online",
      desk_open: "Desk open", desk_closed: "Out of hours", callback: "call back {t}", customer: "Customer",
      bot: "Bot", agent: "Agent", paused: "— an agent took over; the bot is paused —",
      resumed: "— handed back to the bot —", lang_toggle: "中文",
      sec_customer: "Customer", sec_handoff: "Hand-off", sec_purchase: "Purchase and warranty",
      sec_facts: "Facts gathered", sec_steps: "The six steps", sec_remedy: "Remedy",
      sec_account: "In the customer's words", sec_history: "Earlier tickets and visits", sec_notes: "Internal notes",
      f_name: "Name", f_phone: "Phone", f_known: "Known customer", yes: "yes", no: "no", f_reason: "Reason",
      f_anger: "Anger", f_requested: "Requested", f_channel: "Channel", f_language: "Language",
      f_callback: "Call-back", f_order: "Order", f_model: "Model", f_product: "Product", f_bought: "Bought",
      f_delivered: "Delivered", f_shop: "Shop", f_price: "Price", f_warranty: "Warranty", in_warranty: "in warranty",
      out_warranty: "out of warranty", until: "until {d}", f_eligible: "Eligible", f_symptom: "Symptom",
      f_address: "Address", f_contact_time: "Contact time", f_impact: "Impact", f_proposed: "Proposed",
      f_clause: "Clause", f_answer: "Answer", accepted: "accepted", rejected: "rejected", pending: "no answer yet",
      none: "—", no_purchase: "No order linked", no_history: "No earlier tickets or visits", no_notes: "No notes yet",
      step_vent: "Listen", step_apologise: "Apologise", step_gather: "Gather facts", step_propose: "Propose a fix",
      step_opinion: "Ask their opinion", step_follow_up: "Follow up",
      hint_waiting: "Take the conversation over to reply; the bot stays silent for this customer meanwhile.",
      hint_claimed: "You are talking to the customer; the bot is paused.",
      hint_other: "{name} is handling this conversation.", hint_done: "This conversation has ended.",
      hint_rest: "REST customers get no push: the message is in the conversation, which their client polls.",
      sent_failed: "Saved, but it could not be pushed to the customer's channel ({via}).",
      sent_held: "The customer last wrote over 48 hours ago, so WeChat will not take it now: it is held and reaches them first when they write again.", error: "Error: {e}",
      forbidden: "You may not act on this conversation", conflict: "It changed meanwhile; refreshing",
      minutes: "{n} min", seconds: "{n} s", hours: "{h} h {m} min",
      reasons: { customer_request: "Customer asked", anger: "Very angry", safety: "Safety hazard",
        rejected_twice: "Rejected two remedies", no_remedy: "No remedy left", failed_fact: "Facts failed twice",
        repeat_complaint: "Repeat complaint", installation_no_order: "Installation without order",
        fallback: "Not understood" },
      remedies: { "return": "return and refund", exchange: "exchange", free_repair: "free repair",
        paid_repair: "paid repair", repair_at_cost: "repair at cost", inspection: "inspection",
        self_check: "self-check", installation: "free installation" },
      channels: { rest: "REST", telegram: "Telegram", webchat: "Web chat", wechat: "WeChat" },
      products: { air_conditioner: "air conditioner", fridge: "fridge", washing_machine: "washing machine",
        water_heater: "water heater", tv: "TV", range_hood: "range hood", dishwasher: "dishwasher",
        gas_hob: "gas hob", microwave: "microwave" },
      languages: { zh: "Chinese", en: "English" },
      online_one: "1 agent online", desk_zone: "Desk time {z}", your_time: "Your time zone ({zone}): {t}",
      live_on: "live", live_off: "reconnecting…", alert_sound: "Alerts", new_case: "New case waiting: {ticket}",
      transfer: "Transfer", transfer_to: "To", transfer_note: "Note for the colleague (required)",
      transfer_send: "Transfer now", cancel: "Cancel", to_queue: "Back to the queue", online_agent: "online",
      offline_agent: "offline", transferred: "From {from}: {note}", transferred_queue: "{from} put it back in the queue: {note}",
      close_note: "Resolution (required, goes on the ticket)", close_confirm: "Yes, close: the ticket is marked resolved",
      close_send: "Close case", close_need_note: "Write the resolution first", close_need_confirm: "Tick the confirmation",
      closed_marker: "— the agent closed the case —", transfer_need_note: "Write a note for the colleague",
      routed: "for you first", held_for: "offered first to {lang} speakers"
    }
  };
  var STEPS = ["vent", "apologise", "gather", "propose", "opinion", "follow_up"];

  var state = {
    token: sessionStorage.getItem("agentToken"),
    agent: null,
    lang: localStorage.getItem("agentLang") || ((navigator.language || "zh").toLowerCase().indexOf("zh") === 0 ? "zh" : "en"),
    order: localStorage.getItem("agentOrder") || "oldest",
    conversation: null, card: null, cursor: 0, queueTimer: null, eventsTimer: null, canned: [], polling: false,
    shown: {},  // tracker event indices already in the transcript: a poll racing a reload adds nothing twice
    alerts: localStorage.getItem("agentAlerts") !== "off", waitingSeen: null, offeredCount: 0
  };
  // Desk time: every time is shown in the desk's zone (BOT_TIMEZONE, given by the server in a meta tag), whatever
  // the browser's zone, with its label; the agent's own zone is in the tooltip.
  var DESK_ZONE = (function () {
    var meta = document.querySelector('meta[name="desk-zone"]');
    var zone = meta && meta.getAttribute("content");
    try { new Intl.DateTimeFormat("en", { timeZone: zone }); return zone; } catch (e) { return "Asia/Shanghai"; }
  })();
  var BROWSER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

  function $(id) { return document.getElementById(id); }
  function t(key, values) {
    var text = I18N[state.lang][key];
    if (text === undefined) { text = I18N.en[key] !== undefined ? I18N.en[key] : key; }
    if (values) { Object.keys(values).forEach(function (k) { text = text.replace("{" + k + "}", values[k]); }); }
    return text;
  }
  function label(group, key) { var g = I18N[state.lang][group] || {}; return g[key] || key || t("none"); }
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else if (k === "cls") { node.className = attrs[k]; }
      else { node.setAttribute(k, attrs[k]); }
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) { continue; }
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }
  function zoneOffset(d, zone) {  // "UTC+8", "UTC-4:30", "UTC"
    var part = new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "shortOffset" }).formatToParts(d)
      .filter(function (p) { return p.type === "timeZoneName"; })[0];
    return part ? part.value.replace("GMT", "UTC") : "";
  }
  function fmtIn(d, zone, withDate) {
    var opts = { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone };
    if (withDate) { opts.month = "short"; opts.day = "numeric"; }
    return new Intl.DateTimeFormat(state.lang === "zh" ? "zh-CN" : "en-GB", opts).format(d);
  }
  function zoneLabel(d) { return zoneOffset(d, DESK_ZONE) + " " + DESK_ZONE; }
  function fmtTime(iso) {  // "12月5日 10:30 (UTC+8 Asia/Shanghai)"
    if (!iso) { return t("none"); }
    var d = new Date(iso);
    return fmtIn(d, DESK_ZONE, true) + " (" + zoneLabel(d) + ")";
  }
  function yourTime(d) { return t("your_time", { zone: BROWSER_ZONE, t: fmtIn(d, BROWSER_ZONE, true) }); }
  function timeEl(iso, withDate) {  // <time> in desk time with its zone; the agent's own time as the tooltip
    if (!iso) { return document.createTextNode(t("none")); }
    var d = new Date(iso);
    var zone = withDate ? "(" + zoneLabel(d) + ")" : zoneOffset(d, DESK_ZONE);
    return el("time", { cls: "dt", datetime: d.toISOString(), title: yourTime(d) + " · " + DESK_ZONE },
      fmtIn(d, DESK_ZONE, withDate), el("span", { cls: "zone", text: zone }));
  }
  window.AgentConsoleKit = { el: el, label: label, deskTime: fmtTime, timeEl: timeEl };  // shared with desk.js
  function fmtDuration(seconds) {
    if (seconds < 60) { return t("seconds", { n: seconds }); }
    var m = Math.floor(seconds / 60);
    if (m < 60) { return t("minutes", { n: m }); }
    return t("hours", { h: Math.floor(m / 60), m: m % 60 });
  }
  function angerMeter(value) {
    var pct = Math.round(Math.max(0, Math.min(1, value || 0)) * 100);
    var fill = el("i");
    fill.style.width = pct + "%";  // CSSOM, not a style attribute: allowed by the page's content security policy
    var bar = el("span", { cls: "bar" }, fill);
    return el("span", { cls: "anger", title: "anger " + (value || 0) }, bar, String(pct) + "%");
  }

  // ------------------------------------------------------------------------------------------ API
  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    if (state.token) { headers["Authorization"] = "Bearer " + state.token; }
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    return fetch(path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (data) {
          if (resp.status === 401 && path !== "api/login") { signedOut(); }
          if (!resp.ok) { var err = new Error(data.error || resp.statusText); err.status = resp.status; err.data = data; throw err; }
          return data;
        });
      });
  }

  // ------------------------------------------------------------------------------------------ language
  function applyLanguage() {
    document.documentElement.lang = state.lang === "zh" ? "zh" : "en";
    setTitle();
    var now = new Date();
    $("desk-zone").textContent = t("desk_zone", { z: DESK_ZONE + " (" + zoneOffset(now, DESK_ZONE) + ")" });
    $("desk-zone").title = yourTime(now);
    $("alert-sound").checked = state.alerts;
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n]"), function (node) {
      node.textContent = t(node.getAttribute("data-i18n"));
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n-placeholder]"), function (node) {
      node.setAttribute("placeholder", t(node.getAttribute("data-i18n-placeholder")));
    });
    $("lang-toggle").textContent = t("lang_toggle");
    document.dispatchEvent(new CustomEvent("agent:language", { detail: { lang: state.lang } }));  // desk.js
    renderCanned();
    if (state.agent) { refreshQueue(); }
    if (state.card && state.conversation) { loadCase(); }  // the transcript's labels too
  }

  // ------------------------------------------------------------------------------------------ sign in / out
  function showDesk() {
    $("login-view").hidden = true;
    $("desk-view").hidden = false;
    $("logout").hidden = false;
    $("me").hidden = false;
    $("me").textContent = state.agent.display_name + (state.agent.role === "supervisor" ? " · supervisor" : "");
    $("order").value = state.order;
    api("GET", "api/canned").then(function (data) { state.canned = data.replies || []; renderCanned(); });
    $("desk-zone").hidden = false;
    $("alerts-toggle").hidden = false;
    state.waitingSeen = null;
    refreshQueue();
    startLive();
    clearInterval(state.queueTimer);
    state.queueTimer = setInterval(fallbackPoll, 15000);  // waits tick on; and the safety net if the stream drops
    document.dispatchEvent(new CustomEvent("agent:signed-in", { detail: { agent: state.agent } }));  // desk.js
  }
  function signedOut() {
    state.token = null; state.agent = null; state.conversation = null; state.card = null;
    sessionStorage.removeItem("agentToken");
    clearInterval(state.queueTimer); clearInterval(state.eventsTimer); stopLive();
    $("desk-zone").hidden = true; $("alerts-toggle").hidden = true; $("live-status").hidden = true;
    state.offeredCount = 0; setTitle();
    $("desk-view").hidden = true; $("login-view").hidden = false; $("logout").hidden = true; $("me").hidden = true;
    $("desk-status").hidden = true;
    document.dispatchEvent(new CustomEvent("agent:signed-out"));  // desk.js
  }
  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("login-error").hidden = true;
    api("POST", "api/login", { name: $("login-name").value.trim(), password: $("login-password").value })
      .then(function (data) {
        state.token = data.token; state.agent = data.agent;
        sessionStorage.setItem("agentToken", data.token);
        $("login-password").value = "";
        showDesk();
      })
      .catch(function () { $("login-error").textContent = t("bad_credentials"); $("login-error").hidden = false; });
  });
  $("logout").addEventListener("click", function () {
    api("POST", "api/logout").catch(function () {}).then(signedOut);
  });
  $("lang-toggle").addEventListener("click", function () {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("agentLang", state.lang);
    applyLanguage();
  });
  $("order").addEventListener("change", function () {
    state.order = $("order").value; localStorage.setItem("agentOrder", state.order); refreshQueue();
  });

  // ------------------------------------------------------------------------------------------ the queue
  function refreshQueue() {
    if (!state.token) { return; }
    api("GET", "api/queue?order=" + encodeURIComponent(state.order)).then(renderQueue).catch(function () {});
  }
  function renderQueue(data) {
    var status = $("desk-status");
    status.hidden = false;
    status.className = "desk-status" + (data.open_now ? "" : " closed");
    status.textContent = (data.open_now ? t("desk_open") : t("desk_closed")) + " · " + (data.agents_online === 1 && state.lang === "en" ? t("online_one") : t("online", { n: data.agents_online }));
    var list = $("queue");
    list.textContent = "";
    data.items.forEach(function (item) {
      var line = el("div", { cls: "q-line" },
        el("span", { cls: "badge " + item.status, text: t(item.status) }),
        el("span", { cls: "badge reason", text: label("reasons", item.reason) }),
        el("span", { cls: "badge channel", text: label("channels", item.channel) }),
        el("span", { text: label("languages", item.language) }),
        angerMeter(item.anger));
      var detail = el("div", { cls: "q-line" });
      if (item.status === "waiting" && item.position) {
        detail.appendChild(el("span", { text: t("position", { n: item.position }) + " · " + t("wait_min", { n: item.expected_wait_minutes }) }));
      } else if (item.agent) {
        detail.appendChild(el("span", { text: t("by", { name: item.agent_display_name || item.agent }) }));
      }
      if (item.callback_due) { detail.appendChild(el("span", null, t("callback", { t: "" }).trim() + " ", timeEl(item.callback_due, true))); }
      if (item.status === "waiting" && item.routed) { line.appendChild(el("span", { cls: "badge routed", text: t("routed") })); }
      if (item.status === "waiting" && !item.offered) {
        detail.appendChild(el("span", { text: t("held_for", { lang: label("languages", item.language) }) }));
      }
      if (item.product || item.customer_name) {
        detail.appendChild(el("span", { text: [item.customer_name, item.product ? label("products", item.product) : null].filter(Boolean).join(" · ") }));
      }
      var li = el("li", { "data-conversation": item.conversation_id, "data-ticket": item.ticket, tabindex: "0" },
        el("span", { cls: "q-ticket", text: item.ticket }),
        el("span", { cls: "q-wait", text: t("waited", { t: fmtDuration(item.waiting_seconds) }) }),
        line, detail);
      var tr = item.transfer;
      if (tr && ((item.status === "claimed" && state.agent && tr.to === state.agent.name) || (item.status === "waiting" && !tr.to))) {
        li.appendChild(el("div", { cls: "q-note", text: transferText(tr) }));
      }
      li.setAttribute("data-offered", item.offered ? "true" : "false");
      li.setAttribute("data-status", item.status);
      if (item.conversation_id === state.conversation) { li.className = "active"; }
      li.addEventListener("click", function () { openConversation(item.conversation_id); });
      li.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { openConversation(item.conversation_id); } });
      list.appendChild(li);
    });
    $("queue-empty").hidden = data.items.length > 0;
    noticeWaiting(data.items);
  }
  function transferText(tr) {
    return t(tr.to ? "transferred" : "transferred_queue", { from: tr.from_display_name || tr.from, note: tr.note || "" });
  }

  // ------------------------------------------------------------------------------------------ alerts
  function setTitle() {
    var base = t("title") + " · " + (state.lang === "zh" ? "Agent console" : "售后客服工作台");
    document.title = (state.alerts && state.offeredCount ? "(" + state.offeredCount + ") " : "") + base;
  }
  function noticeWaiting(items) {  // a case starts waiting for me: sound, title badge, desktop notification
    var offered = items.filter(function (i) { return i.status === "waiting" && i.offered; });
    var ids = {};
    offered.forEach(function (i) { ids[i.handoff_id] = true; });
    var fresh = state.waitingSeen === null ? [] : offered.filter(function (i) { return !state.waitingSeen[i.handoff_id]; });
    state.waitingSeen = ids;
    state.offeredCount = offered.length;
    setTitle();
    if (!fresh.length || !state.alerts) { return; }
    document.body.setAttribute("data-alerted", String(Number(document.body.getAttribute("data-alerted") || 0) + 1));
    beep();
    if (window.Notification && Notification.permission === "granted" && document.hidden) {
      try { new Notification(t("title"), { body: t("new_case", { ticket: fresh[0].ticket }), tag: "agent-queue" }); } catch (e) { /* not allowed here */ }
    }
  }
  function beep() {
    try {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      state.audio = state.audio || new Ctx();
      var osc = state.audio.createOscillator(), gain = state.audio.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.08;
      osc.connect(gain); gain.connect(state.audio.destination);
      osc.start(); osc.stop(state.audio.currentTime + 0.18);
    } catch (e) { /* no audio here */ }
  }
  $("alert-sound").addEventListener("change", function () {
    state.alerts = $("alert-sound").checked;
    localStorage.setItem("agentAlerts", state.alerts ? "on" : "off");
    if (state.alerts && window.Notification && Notification.permission === "default") { Notification.requestPermission(); }
    setTitle();
  });

  // ------------------------------------------------------------------------------------------ live stream
  // Server-sent events read with fetch (so the bearer token goes in a header, never in the URL). `queue`: read the
  // queue; `conversation`: read the open conversation's new events. If the stream drops, it reconnects every 2 s
  // and the 15 s fallback poll covers the gap.
  var live = { ctrl: null, up: false, retry: null };
  function setLive(up) {
    live.up = up;
    $("live-status").hidden = !state.token;
    $("live-status").className = "live-status small" + (up ? "" : " down");
    $("live-status").textContent = up ? "● " + t("live_on") : t("live_off");
  }
  function stopLive() {
    clearTimeout(live.retry);
    if (live.ctrl) { live.ctrl.abort(); live.ctrl = null; }
  }
  function startLive() {
    stopLive();
    if (!state.token) { return; }
    var ctrl = new AbortController();
    live.ctrl = ctrl;
    var conv = state.conversation;
    fetch("api/stream" + (conv ? "?conversation=" + encodeURIComponent(conv) : ""), {
      headers: { "Authorization": "Bearer " + state.token, "Accept": "text/event-stream" }, signal: ctrl.signal, cache: "no-store"
    }).then(function (resp) {
      if (resp.status === 401) { signedOut(); return; }
      if (!resp.ok || !resp.body) { throw new Error("stream " + resp.status); }
      setLive(true);
      var reader = resp.body.getReader(), decoder = new TextDecoder(), buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) { return; }
          buffer += decoder.decode(chunk.value, { stream: true });
          var frames = buffer.split("\n\n");
          buffer = frames.pop();
          frames.forEach(onFrame);
          return pump();
        });
      }
      return pump();
    }).catch(function () {}).then(function () {
      if (live.ctrl !== ctrl || ctrl.signal.aborted || !state.token) { return; }
      setLive(false);
      live.retry = setTimeout(startLive, 2000);
    });
  }
  function onFrame(frame) {
    var event = "message", data = "";
    frame.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) { event = line.slice(6).trim(); }
      else if (line.indexOf("data:") === 0) { data += line.slice(5).trim(); }
    });
    if (event === "queue") { refreshQueue(); }
    else if (event === "conversation") { pollEvents(); }
    else if (event === "bye") { signedOut(); }
  }
  function fallbackPoll() {
    refreshQueue();
    if (!live.up) { pollEvents(); }
  }

  // ------------------------------------------------------------------------------------------ one conversation
  function openConversation(id) {
    state.conversation = id;
    Array.prototype.forEach.call(document.querySelectorAll("#queue li"), function (li) {
      li.className = li.getAttribute("data-conversation") === id ? "active" : "";
    });
    $("transfer-form").hidden = true;
    $("close-form").hidden = true;
    return loadCase().then(function () {
      if (state.conversation === id) { startLive(); }  // the stream now also tells of this conversation
    });
  }
  function loadCase() {
    var id = state.conversation;
    return api("GET", "api/conversations/" + encodeURIComponent(id)).then(function (card) {
      if (state.conversation !== id) { return; }
      state.card = card;
      state.cursor = card.cursor;
      state.shown = {};
      $("transcript").textContent = "";
      card.transcript.forEach(addItem);
      renderCase();
      scrollDown();
    }).catch(function (err) {
      if (err.status === 403 && state.conversation === id) { leaveCase(); return; }  // e.g. transferred away
      showError(err);
    });
  }
  function leaveCase() {
    state.conversation = null; state.card = null;
    $("case").hidden = true; $("no-case").hidden = false; $("card").hidden = true; $("note-form").hidden = true;
    startLive();
  }
  function pollEvents() {
    if (!state.conversation || state.polling) { return; }
    var id = state.conversation;
    state.polling = true;
    api("GET", "api/conversations/" + encodeURIComponent(id) + "/events?after=" + state.cursor).then(function (data) {
      if (state.conversation !== id) { return; }
      var fresh = data.items.length > 0;
      data.items.forEach(addItem);
      state.cursor = Math.max(state.cursor, data.cursor);
      if (fresh) { scrollDown(); }
      var h = state.card.handoff;
      if (h.status !== data.handoff.status || state.card.may_act !== data.handoff.may_act) {
        loadCase();
      }
    }).catch(function () {}).then(function () { state.polling = false; });
  }
  function scrollDown() { var tr = $("transcript"); tr.scrollTop = tr.scrollHeight; }
  function addItem(item) {
    if (state.shown[item.i]) { return; }
    state.shown[item.i] = true;
    var node;
    if (item.from === "system") {
      node = el("li", { cls: "sys" + (item.what === "closed" ? " closed" : ""),
        text: item.what === "paused" ? t("paused") : item.what === "closed" ? t("closed_marker") : t("resumed") });
    } else {
      var who = item.from === "customer" ? t("customer") : item.from === "agent"
        ? t("agent") + " · " + (item.agent_display_name || item.agent) : t("bot");
      node = el("li", { cls: "msg " + item.from, "data-from": item.from },
        el("span", { cls: "who" }, who + " · ", timeEl(item.at, false)),
        document.createTextNode(item.from === "customer" && item.shown ? item.shown : item.text));
      if (item.buttons && item.buttons.length) {
        var row = el("div", { cls: "buttons" });
        item.buttons.forEach(function (b) { row.appendChild(el("span", { text: b })); });
        node.appendChild(row);
      }
    }
    node.setAttribute("data-i", item.i);
    $("transcript").appendChild(node);
  }

  function renderCase() {
    var card = state.card;
    var h = card.handoff;
    $("no-case").hidden = true;
    $("case").hidden = false;
    $("case-ticket").textContent = card.ticket.number;
    $("case-status").className = "badge " + h.status;
    $("case-status").textContent = t(h.status);
    $("case-sub").textContent = [label("channels", card.channel), label("languages", h.language),
      label("reasons", h.reason), card.conversation_id].join(" · ");
    var mine = state.agent && h.agent === state.agent.name;
    var holder = h.status === "claimed" && (mine || state.agent.role === "supervisor");
    $("btn-claim").hidden = h.status !== "waiting";
    $("btn-claim").disabled = !card.may_act;
    $("btn-handback").hidden = h.status !== "claimed";
    $("btn-handback").disabled = !holder;
    $("btn-close").hidden = !(h.status === "waiting" || h.status === "claimed");
    $("btn-close").disabled = !card.may_act || card.masked;  // only the agent holding the case (or a supervisor)
    $("btn-transfer").hidden = h.status !== "claimed";
    $("btn-transfer").disabled = !holder;
    var tr = card.transfer;
    var forMe = tr && ((h.status === "claimed" && tr.to === (state.agent && state.agent.name)) || (h.status === "waiting" && !tr.to));
    $("case-transfer").hidden = !forMe;
    $("case-transfer").textContent = forMe ? transferText(tr) : "";
    $("reply").disabled = !holder;
    $("send").disabled = !holder;
    $("canned").disabled = !holder;
    var hint = h.status === "waiting" ? t("hint_waiting") : h.status === "claimed"
      ? (holder ? t("hint_claimed") : t("hint_other", { name: h.agent_display_name || h.agent })) : t("hint_done");
    if (holder && card.channel === "rest") { hint += " " + t("hint_rest"); }
    $("composer-hint").textContent = hint;
    renderCard(card);
  }

  function dl(rows) {
    var list = el("dl");
    rows.forEach(function (row) {
      if (row[1] === null || row[1] === undefined || row[1] === "") { row[1] = t("none"); }
      list.appendChild(el("dt", { text: row[0] }));
      var dd = el("dd");
      if (typeof row[1] === "string" || typeof row[1] === "number") { dd.textContent = String(row[1]); } else { dd.appendChild(row[1]); }
      list.appendChild(dd);
    });
    return list;
  }
  function renderCard(card) {
    var box = $("card");
    box.hidden = false;
    $("note-form").hidden = false;
    box.textContent = "";
    var h = card.handoff, f = card.facts;
    box.appendChild(el("h3", { text: t("sec_customer") }));
    box.appendChild(dl([[t("f_name"), card.customer.name], [t("f_phone"), card.customer.phone],
      [t("f_known"), card.customer.known ? t("yes") : t("no")]]));
    box.appendChild(el("h3", { text: t("sec_handoff") }));
    var rows = [[t("f_reason"), label("reasons", h.reason)], [t("f_anger"), angerMeter(h.anger)],
      [t("f_requested"), timeEl(h.requested_at, true)], [t("f_channel"), label("channels", card.channel)],
      [t("f_language"), label("languages", h.language)]];
    if (h.callback_due) { rows.push([t("f_callback"), timeEl(h.callback_due, true)]); }
    box.appendChild(dl(rows));

    box.appendChild(el("h3", { text: t("sec_purchase") }));
    if (card.purchase) {
      var p = card.purchase, w = card.warranty;
      var prows = [[t("f_order"), p.order_id], [t("f_product"), p.name ? p.name[state.lang] : label("products", p.category)],
        [t("f_model"), p.model], [t("f_bought"), p.purchase_date], [t("f_delivered"), p.delivery_date],
        [t("f_shop"), p.shop], [t("f_price"), p.price]];
      if (w && !w.error) {
        prows.push([t("f_warranty"), el("span", { cls: w.in_warranty ? "warranty-in" : "warranty-out",
          text: (w.in_warranty ? t("in_warranty") : t("out_warranty")) + " · " + t("until", { d: w.ends }) })]);
        prows.push([t("f_eligible"), (w.eligible || []).map(function (k) { return label("remedies", k); }).join(state.lang === "zh" ? "、" : ", ") || t("none")]);
      }
      box.appendChild(dl(prows));
    } else {
      box.appendChild(el("p", { cls: "muted", text: t("no_purchase") }));
    }

    box.appendChild(el("h3", { text: t("sec_facts") }));
    box.appendChild(dl([[t("f_product"), f.product ? label("products", f.product) : null], [t("f_model"), f.model],
      [t("f_symptom"), card.labels.symptom ? card.labels.symptom[state.lang] : f.symptom],
      [t("f_bought"), f.purchase_date], [t("f_order"), f.order_id], [t("f_address"), f.address],
      [t("f_contact_time"), f.contact_time], [t("f_impact"), card.labels.impact ? card.labels.impact[state.lang] : f.impact]]));

    box.appendChild(el("h3", { text: t("sec_steps") }));
    var steps = el("ol", { cls: "steps" });
    card.steps.forEach(function (s) {
      steps.appendChild(el("li", { cls: s.at ? "done" : "" }, el("span", { cls: "dot", text: s.at ? "✓" : "" }),
        el("span", { text: t("step_" + s.step) }), el("span", { cls: "when" }, s.at ? timeEl(s.at, true) : null)));
    });
    box.appendChild(steps);

    box.appendChild(el("h3", { text: t("sec_remedy") }));
    var r = card.remedy;
    box.appendChild(dl([[t("f_proposed"), r.proposed ? label("remedies", r.proposed) : null],
      [t("f_clause"), r.clause ? r.clause + (r.clause_text ? " — " + r.clause_text : "") : null],
      [t("f_answer"), r.proposed ? t(r.answer || "pending") : null]]));

    if (card.ticket.account) {
      box.appendChild(el("h3", { text: t("sec_account") }));
      box.appendChild(el("pre", { cls: "account", text: card.ticket.account }));
    }

    box.appendChild(el("h3", { text: t("sec_history") }));
    var hist = card.history;
    if (!hist.tickets.length && !hist.visits.length) {
      box.appendChild(el("p", { cls: "muted", text: t("no_history") }));
    } else {
      var ul = el("ul", { cls: "list" });
      hist.tickets.forEach(function (x) {
        ul.appendChild(el("li", null, x.number + " · " + label("products", x.product) + " · " + x.status + " · ", timeEl(x.created_at, true)));
      });
      hist.visits.forEach(function (v) {
        ul.appendChild(el("li", null, "🔧 ", timeEl(v.start, true), " · " + (v.engineer ? v.engineer[state.lang] : "") + " · " + v.status));
      });
      box.appendChild(ul);
    }

    box.appendChild(el("h3", { text: t("sec_notes") }));
    if (!card.notes.length) {
      box.appendChild(el("p", { cls: "muted", text: t("no_notes") }));
    } else {
      var notes = el("ul", { cls: "notes" });
      card.notes.forEach(function (n) { notes.appendChild(el("li", null, n.agent + " · ", timeEl(n.at, true), "：" + n.text)); });
      box.appendChild(notes);
    }
    document.dispatchEvent(new CustomEvent("agent:card", { detail: { card: card, conversation: state.conversation } }));  // customers.js
  }
  document.addEventListener("agent:reload-case", function () { if (state.conversation) { loadCase(); } });  // customers.js

  function showError(err) {
    var box = $("case-error");
    if (!err) { box.hidden = true; return; }
    var msg = err.status === 403 ? t("forbidden") : err.status === 409 ? t("conflict") : t("error", { e: err.message });
    box.textContent = msg;
    box.hidden = false;
    setTimeout(function () { box.hidden = true; }, 5000);
    if (err.status === 409) { loadCase(); }
  }

  function act(path, body) {
    var id = state.conversation;
    return api("POST", "api/conversations/" + encodeURIComponent(id) + "/" + path, body)
      .then(function (data) { showError(null); return loadCase().then(function () { refreshQueue(); return data; }); })
      .catch(showError);
  }
  $("btn-claim").addEventListener("click", function () { act("claim"); });
  $("btn-handback").addEventListener("click", function () { act("handback"); });
  $("btn-close").addEventListener("click", function () {  // asks for the resolution and a confirmation first
    $("transfer-form").hidden = true;
    $("close-form").hidden = false;
    $("close-error").hidden = true;
    $("close-confirm").checked = false;
    $("close-note").focus();
  });
  $("close-cancel").addEventListener("click", function () { $("close-form").hidden = true; });
  $("close-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var note = $("close-note").value.trim();
    var problem = !note ? t("close_need_note") : !$("close-confirm").checked ? t("close_need_confirm") : null;
    $("close-error").textContent = problem || "";
    $("close-error").hidden = !problem;
    if (problem) { return; }
    act("close", { note: note }).then(function (data) {
      if (data) { $("close-form").hidden = true; $("close-note").value = ""; }
    });
  });
  $("btn-transfer").addEventListener("click", function () {
    $("close-form").hidden = true;
    var select = $("transfer-to");
    select.textContent = "";
    select.appendChild(el("option", { value: "", text: t("to_queue") }));
    api("GET", "api/agents").then(function (data) {
      data.agents.forEach(function (a) {
        select.appendChild(el("option", { value: a.name, text: a.display_name + " (" + a.name + ") · " +
          (a.online ? t("online_agent") : t("offline_agent")) + " · " + (a.languages || []).map(function (l) { return label("languages", l); }).join("/") }));
      });
    }).catch(showError);
    $("transfer-form").hidden = false;
    $("transfer-note").focus();
  });
  $("transfer-cancel").addEventListener("click", function () { $("transfer-form").hidden = true; });
  $("transfer-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var note = $("transfer-note").value.trim();
    if (!note) { showError(new Error(t("transfer_need_note"))); return; }
    act("transfer", { to: $("transfer-to").value || null, note: note }).then(function (data) {
      if (data) { $("transfer-form").hidden = true; $("transfer-note").value = ""; }
    });
  });
  $("composer").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = $("reply").value.trim();
    if (!text) { return; }
    $("send").disabled = true;
    api("POST", "api/conversations/" + encodeURIComponent(state.conversation) + "/messages", { text: text })
      .then(function (data) {
        $("reply").value = "";
        if (data.delivery && !data.delivery.delivered && data.delivery.via !== "tracker") {
          var held = data.delivery.via === "wechat-held";  // WeChat past its 48-hour window
          showError(new Error(held ? t("sent_held") : t("sent_failed", { via: data.delivery.via })));
        }
        pollEvents();
      })
      .catch(showError)
      .then(function () { $("send").disabled = false; });
  });
  $("reply").addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); $("composer").requestSubmit(); }
  });
  function renderCanned() {
    var select = $("canned");
    var keep = select.options[0];
    select.textContent = "";
    keep.textContent = t("canned");
    select.appendChild(keep);
    state.canned.forEach(function (c) {
      select.appendChild(el("option", { value: c.id, text: c.title[state.lang] }));
    });
  }
  $("canned").addEventListener("change", function () {
    var chosen = state.canned.filter(function (c) { return c.id === $("canned").value; })[0];
    if (chosen) {
      var lang = state.card && state.card.handoff.language === "en" ? "en" : "zh";  // the customer's language
      var box = $("reply");
      box.value = (box.value ? box.value + "\n" : "") + chosen[lang];
      box.focus();
    }
    $("canned").value = "";
  });
  $("note-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = $("note").value.trim();
    if (!text || !state.conversation) { return; }
    act("notes", { text: text }).then(function () { $("note").value = ""; });
  });

  // ------------------------------------------------------------------------------------------ start
  applyLanguage();
  if (state.token) {
    api("GET", "api/me").then(function (data) { state.agent = data.agent; showDesk(); }).catch(signedOut);
  }
})();
