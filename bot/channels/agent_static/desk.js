/* The desk pages of the agent console: alerts (with the badge), the call-back work list, the engineers' day lists
   and the figures with their charts (plain SVG, no library). Plain JS; console.js signs in and tells this file
   through the document events agent:signed-in, agent:signed-out and agent:language. */
(function () {
  "use strict";

  var I18N = {
    zh: {
      nav_queue: "会话", nav_alerts: "预警", nav_callbacks: "回电", nav_visits: "上门", nav_figures: "指标",
      alerts_title: "预警：差评、未解决、重新打开", show_acknowledged: "显示已处理", alerts_empty: "没有待处理的预警",
      col_ticket: "工单", col_reasons: "原因", col_score: "评分", col_status: "状态", col_channel: "渠道", col_when: "时间",
      col_due: "约定时间", col_customer: "客户", col_phone: "电话", col_state: "状态", col_window: "时段",
      col_product: "产品", col_address: "地址", col_agent: "客服", col_handled: "处理数",
      col_first_response: "首次响应中位数（分钟）", col_ratings: "评分",
      ticket_actions: "工单闭环", remedy_return: "退货", remedy_exchange: "换货", remedy_refund: "退款",
      mark_completed: "标记已完成", reopen_reason: "重新打开的原因", reopen: "重新打开", acknowledge: "已处理",
      low_rating: "差评", not_solved: "未解决", reopened: "重新打开", acknowledged_by: "{name} 已处理",
      callbacks_title: "非营业时间的回电任务", show_done: "显示已完成", callbacks_empty: "没有回电任务",
      overdue: "已超时", to_do: "待回电", done: "已完成", done_by: "{name} · {t}", mark_done: "已回电",
      visits_title: "工程师日程", visits_empty: "这一天没有上门安排", v_done: "完成", v_no_show: "未上门",
      v_late: "迟到", late_minutes: "迟到分钟数？", late_n: "迟到 {n} 分钟",
      booked: "已预约", cancelled: "已取消", no_show: "未上门",
      figures_title: "服务指标", since: "从", until: "至（不含）", show: "查看",
      chart_week: "按周：投诉率、遗漏率、不满意率", chart_product: "按产品", chart_channel: "按渠道",
      agents_title: "客服", omitted_title: "遗漏的工单", no_data: "暂无数据",
      k_tickets: "工单", k_complaint: "投诉率", k_omission: "遗漏率", k_dissatisfaction: "不满意率",
      k_fcr: "一次解决率", k_handoff: "转人工率", k_reopen: "重开率", k_sla: "超时（首次响应/解决）",
      k_visit: "到首次上门（中位数）", hours: "{n} 小时",
      why: { resolution_overdue: "超过解决时限", follow_up_overdue: "未按时回访", callback_overdue: "未按约回电",
        visit_outcome_missing: "上门结果未登记" },
      saved: "已保存", error: "出错了：{e}"
    },
    en: {
      nav_queue: "Queue", nav_alerts: "Alerts", nav_callbacks: "Call-backs", nav_visits: "Visits", nav_figures: "Figures",
      alerts_title: "Alerts: low ratings, not solved, reopened", show_acknowledged: "show acknowledged",
      alerts_empty: "No open alerts", col_ticket: "Ticket", col_reasons: "Why", col_score: "Rating",
      col_status: "Status", col_channel: "Channel", col_when: "When", col_due: "Due", col_customer: "Customer",
      col_phone: "Phone", col_state: "State", col_window: "Window", col_product: "Product", col_address: "Address",
      col_agent: "Agent", col_handled: "Handled", col_first_response: "Median first response (min)",
      col_ratings: "Ratings", ticket_actions: "Close the loop on a ticket", remedy_return: "return",
      remedy_exchange: "exchange", remedy_refund: "refund", mark_completed: "Mark completed",
      reopen_reason: "Why reopen?", reopen: "Reopen", acknowledge: "Acknowledge", low_rating: "low rating",
      not_solved: "not solved", reopened: "reopened", acknowledged_by: "acknowledged by {name}",
      callbacks_title: "Out-of-hours call-backs", show_done: "show done", callbacks_empty: "No call-backs",
      overdue: "overdue", to_do: "to do", done: "done", done_by: "{name} · {t}", mark_done: "Called back",
      visits_title: "Engineer's day", visits_empty: "No visits that day", v_done: "Done", v_no_show: "No-show",
      v_late: "Late", late_minutes: "How many minutes late?", late_n: "{n} min late", booked: "booked",
      cancelled: "cancelled", no_show: "no-show", figures_title: "Figures", since: "From", until: "until (excl.)",
      show: "Show", chart_week: "By week: complaint, omission, dissatisfaction rates", chart_product: "By product",
      chart_channel: "By channel", agents_title: "Agents", omitted_title: "Omitted tickets", no_data: "No data",
      k_tickets: "Tickets", k_complaint: "Complaint rate", k_omission: "Omission rate",
      k_dissatisfaction: "Dissatisfaction", k_fcr: "First-contact resolution", k_handoff: "Hand-off rate",
      k_reopen: "Reopen rate", k_sla: "SLA breaches (first response / resolution)", k_visit: "To first visit (median)",
      hours: "{n} h",
      why: { resolution_overdue: "past the resolution deadline", follow_up_overdue: "follow-up missed",
        callback_overdue: "call-back missed", visit_outcome_missing: "visit outcome not recorded" },
      saved: "Saved", error: "Error: {e}"
    }
  };
  var SERIES = [["complaint_rate", "k_complaint", "#1565c0"], ["omission_rate", "k_omission", "#ef6c00"],
    ["dissatisfaction_rate", "k_dissatisfaction", "#c62828"]];
  var SVG = "http://www.w3.org/2000/svg";
  var desk = { lang: localStorage.getItem("agentLang") || "zh", page: "queue", timer: null, signedIn: false,
    engineers: [] };

  function $(id) { return document.getElementById(id); }
  function t(key, values) {
    var text = I18N[desk.lang][key];
    if (text === undefined) { text = I18N.en[key] !== undefined ? I18N.en[key] : key; }
    if (values) { Object.keys(values).forEach(function (k) { text = text.replace("{" + k + "}", values[k]); }); }
    return text;
  }
  var el = window.AgentConsoleKit.el;  // from console.js
  var label = window.AgentConsoleKit.label;  // product and channel names in the console's language
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; }
  function when(iso) {  // desk time with its zone label, whatever the browser's zone (console.js)
    if (!iso) { return "—"; }
    return window.AgentConsoleKit.deskTime(iso);
  }
  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    var token = sessionStorage.getItem("agentToken");
    if (token) { headers["Authorization"] = "Bearer " + token; }
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    return fetch(path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (data) {
          if (!resp.ok) { var err = new Error(data.detail || data.error || resp.statusText); err.status = resp.status; throw err; }
          return data;
        });
      });
  }
  function button(text, cls, onClick) {
    var b = el("button", { type: "button", cls: cls || "", text: text });
    b.addEventListener("click", onClick);
    return b;
  }

  // ------------------------------------------------------------------------------------------ pages
  var PAGES = { queue: "desk-view", alerts: "alerts-view", callbacks: "callbacks-view", visits: "visits-view",
    figures: "figures-view" };
  function show(page) {
    desk.page = page;
    Object.keys(PAGES).forEach(function (p) { $(PAGES[p]).hidden = p !== page; });
    Array.prototype.forEach.call(document.querySelectorAll("#desk-nav button"), function (b) {
      b.className = b.getAttribute("data-page") === page ? "active" : "";
    });
    refresh();
  }
  function refresh() {
    badges();
    if (desk.page === "alerts") { loadAlerts(); }
    if (desk.page === "callbacks") { loadCallbacks(); }
    if (desk.page === "visits") { loadVisits(); }
    if (desk.page === "figures") { loadFigures(); }
  }
  function applyLanguage() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n-desk]"), function (node) {
      node.textContent = t(node.getAttribute("data-i18n-desk"));
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n-desk-placeholder]"), function (node) {
      node.setAttribute("placeholder", t(node.getAttribute("data-i18n-desk-placeholder")));
    });
    if (desk.signedIn) { renderEngineers(); refresh(); }
  }
  function badges() {
    api("GET", "api/alerts").then(function (data) {
      $("alert-badge").textContent = String(data.open);
      $("alert-badge").hidden = data.open === 0;
    }).catch(function () {});
    api("GET", "api/callbacks").then(function (data) {
      $("callback-badge").textContent = String(data.to_do);
      $("callback-badge").hidden = data.to_do === 0;
      $("callback-badge").className = "count-badge" + (data.overdue ? " overdue" : "");
    }).catch(function () {});
  }

  // ------------------------------------------------------------------------------------------ alerts
  function loadAlerts() {
    api("GET", "api/alerts" + ($("alerts-all").checked ? "?all=1" : "")).then(function (data) {
      var body = $("alerts-list");
      body.textContent = "";
      data.items.forEach(function (a) {
        var reasons = el("td");
        a.reasons.forEach(function (r) { reasons.appendChild(el("span", { cls: "badge reason", text: t(r) })); });
        var action = el("td");
        if (a.open) {
          action.appendChild(button(t("acknowledge"), "", function () {
            api("POST", "api/alerts/" + encodeURIComponent(a.ticket) + "/ack", {}).then(refresh);
          }));
        } else {
          action.appendChild(el("span", { cls: "muted small", text: t("acknowledged_by", { name: a.acknowledged_by || "" }) }));
        }
        var row = el("tr", { "data-ticket": a.ticket }, el("td", { text: a.ticket }), reasons,
          el("td", { text: a.score === null || a.score === undefined ? "—" : String(a.score) }),
          el("td", { text: a.status }), el("td", { text: a.channel }), el("td", { text: when(a.last_at) }), action);
        row.addEventListener("dblclick", function () { $("ticket-number").value = a.ticket; });
        body.appendChild(row);
      });
      $("alerts-empty").hidden = data.items.length > 0;
    }).catch(function () {});
  }
  function ticketAction(path, body) {
    var number = $("ticket-number").value.trim();
    if (!number) { return; }
    api("POST", "api/tickets/" + encodeURIComponent(number) + "/" + path, body).then(function (data) {
      $("ticket-result").textContent = t("saved") + ": " + data.ticket + " → " + data.status;
      $("ticket-result").className = "small";
      refresh();
    }).catch(function (err) {
      $("ticket-result").textContent = t("error", { e: err.message });
      $("ticket-result").className = "small error";
    });
  }

  // ------------------------------------------------------------------------------------------ call-backs
  function loadCallbacks() {
    api("GET", "api/callbacks" + ($("callbacks-all").checked ? "?all=1" : "")).then(function (data) {
      var body = $("callbacks-list");
      body.textContent = "";
      data.items.forEach(function (c) {
        var state = c.done ? el("span", { cls: "badge closed", text: t("done") })
          : el("span", { cls: "badge " + (c.overdue ? "reason" : "waiting"), text: c.overdue ? t("overdue") : t("to_do") });
        var action = el("td");
        if (c.done) {
          action.appendChild(el("span", { cls: "muted small", text: t("done_by", { name: c.done_by || "", t: when(c.done_at) }) }));
        } else {
          action.appendChild(button(t("mark_done"), "primary", function () {
            api("POST", "api/callbacks/" + c.handoff_id + "/done", {}).then(refresh);
          }));
        }
        body.appendChild(el("tr", { "data-handoff": String(c.handoff_id) }, el("td", { text: when(c.callback_due) }),
          el("td", { text: c.ticket }), el("td", { text: c.customer || "—" }), el("td", { text: c.phone || "—" }),
          el("td", { text: c.channel }), el("td", {}, state), action));
      });
      $("callbacks-empty").hidden = data.items.length > 0;
    }).catch(function () {});
  }

  // ------------------------------------------------------------------------------------------ visits
  function renderEngineers() {
    var select = $("visits-engineer");
    var chosen = select.value;
    select.textContent = "";
    desk.engineers.forEach(function (e) {
      select.appendChild(el("option", { value: e.code, text: e.code + " " + e.name[desk.lang] }));
    });
    if (chosen) { select.value = chosen; }
  }
  function loadVisits() {
    var go = function () {
      if (!$("visits-engineer").value) { return; }
      // no date chosen yet: the server's "today" in the desk's time zone
      var q = "?engineer=" + encodeURIComponent($("visits-engineer").value) +
        ($("visits-date").value ? "&date=" + encodeURIComponent($("visits-date").value) : "");
      api("GET", "api/visits/day" + q).then(function (data) {
        $("visits-date").value = data.date;
        renderVisits(data);
      }).catch(function () {});
    };
    if (!desk.engineers.length) {
      api("GET", "api/engineers").then(function (data) { desk.engineers = data.items; renderEngineers(); go(); });
    } else { go(); }
  }
  function setState(visit, state) {
    var body = { state: state };
    if (state === "late") {
      var minutes = parseInt(window.prompt(t("late_minutes"), "15") || "", 10);
      if (!minutes) { return; }
      body.minutes = minutes;
    }
    api("POST", "api/visits/" + visit.id + "/state", body).then(function () { $("visits-error").hidden = true; loadVisits(); })
      .catch(function (err) { $("visits-error").textContent = t("error", { e: err.message }); $("visits-error").hidden = false; });
  }
  function renderVisits(data) {
    var body = $("visits-list");
    body.textContent = "";
    data.visits.forEach(function (v) {
      var state = el("td", {}, el("span", { cls: "badge " + (v.status === "done" ? "closed" : v.status === "no_show" ? "reason" : "waiting"),
        text: t(v.status) }));
      if (v.late_minutes) { state.appendChild(el("span", { cls: "small muted", text: " " + t("late_n", { n: v.late_minutes }) })); }
      var actions = el("td", { cls: "actions" });
      if (v.status === "booked") {
        actions.appendChild(button(t("v_done"), "primary", function () { setState(v, "done"); }));
        actions.appendChild(button(t("v_no_show"), "danger", function () { setState(v, "no_show"); }));
        actions.appendChild(button(t("v_late"), "", function () { setState(v, "late"); }));
      }
      body.appendChild(el("tr", { "data-visit": String(v.id) }, el("td", { text: v.local_window }),
        el("td", { text: v.ticket || "—" }), state, el("td", { text: v.product || "—" }),
        el("td", { text: v.customer || "—" }), el("td", { text: v.address }), actions));
    });
    $("visits-empty").hidden = data.visits.length > 0;
  }

  // ------------------------------------------------------------------------------------------ figures
  function loadFigures() {
    var q = [];
    if ($("figures-since").value) { q.push("since=" + $("figures-since").value); }
    if ($("figures-until").value) { q.push("until=" + $("figures-until").value); }
    api("GET", "api/figures" + (q.length ? "?" + q.join("&") : "")).then(renderFigures).catch(function () {});
  }
  function kpi(label, value, note) {
    return el("div", { cls: "kpi" }, el("div", { cls: "kpi-value", text: value }), el("div", { cls: "kpi-label", text: label }),
      note ? el("div", { cls: "kpi-note", text: note }) : null);
  }
  function renderFigures(f) {
    var box = $("figures-kpis");
    box.textContent = "";
    var sla = f.sla_breaches;
    box.appendChild(kpi(t("k_tickets"), String(f.tickets)));
    box.appendChild(kpi(t("k_complaint"), pct(f.complaint_rate), String(f.complaints)));
    box.appendChild(kpi(t("k_omission"), pct(f.omission_rate), String(f.omitted.length)));
    box.appendChild(kpi(t("k_dissatisfaction"), pct(f.dissatisfaction_rate), f.ratings.low + " / " + f.ratings.count));
    box.appendChild(kpi(t("k_fcr"), pct(f.first_contact_resolution.rate)));
    box.appendChild(kpi(t("k_handoff"), pct(f.handoff_rate)));
    box.appendChild(kpi(t("k_reopen"), pct(f.reopen_rate)));
    box.appendChild(kpi(t("k_sla"), sla.first_response + " / " + sla.resolution));
    box.appendChild(kpi(t("k_visit"), f.median_hours_to_first_visit === null ? "—" : t("hours", { n: f.median_hours_to_first_visit })));
    chart($("chart-week"), f.by_week, function (k) { return k; });
    chart($("chart-product"), f.by_product, function (k) { return k === "unknown" ? "—" : label("products", k); });
    chart($("chart-channel"), f.by_channel, function (k) { return label("channels", k); });
    var agents = $("agents-list");
    agents.textContent = "";
    f.agents.forEach(function (a) {
      agents.appendChild(el("tr", {}, el("td", { text: a.display_name || a.agent }), el("td", { text: String(a.handled) }),
        el("td", { text: a.median_first_response_minutes === null ? "—" : String(a.median_first_response_minutes) }),
        el("td", { text: a.ratings.count + (a.ratings.mean === null ? "" : " · " + a.ratings.mean) })));
    });
    var omitted = $("omitted-list");
    omitted.textContent = "";
    f.omitted.forEach(function (o) {
      omitted.appendChild(el("li", { text: o.number + " (" + o.status + "): " + o.why.map(function (w) { return (I18N[desk.lang].why || {})[w] || w; }).join(", ") }));
    });
  }
  /* Grouped bars: one group per key, one bar per rate (complaint, omission, dissatisfaction), 0-100 %. */
  function chart(box, groups, name) {
    box.textContent = "";
    var keys = Object.keys(groups || {});
    if (!keys.length) { box.appendChild(el("p", { cls: "muted", text: t("no_data") })); return; }
    var W = 520, H = 220, left = 36, bottom = 40, top = 10;
    var plotH = H - bottom - top, groupW = (W - left - 10) / keys.length, barW = Math.min(26, (groupW - 12) / SERIES.length);
    var max = 0;
    keys.forEach(function (k) { SERIES.forEach(function (s) { max = Math.max(max, groups[k][s[0]] || 0); }); });
    max = max > 0 ? Math.min(1, Math.ceil(max * 10) / 10) : 0.1;
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img", "class": "chart-svg" });
    [0, 0.5, 1].forEach(function (f) {
      var y = top + plotH - f * plotH;
      root.appendChild(svg("line", { x1: left, x2: W - 6, y1: y, y2: y, stroke: "#e2e6ec" }));
      root.appendChild(svg("text", { x: left - 4, y: y + 4, "text-anchor": "end", "font-size": 10, fill: "#6b7785" },
        Math.round(f * max * 100) + "%"));
    });
    keys.forEach(function (k, i) {
      var x0 = left + i * groupW + (groupW - barW * SERIES.length) / 2;
      SERIES.forEach(function (s, j) {
        var v = groups[k][s[0]] || 0, h = Math.max(v > 0 ? 1 : 0, (v / max) * plotH);
        var bar = svg("rect", { x: x0 + j * barW, y: top + plotH - h, width: barW - 2, height: h, fill: s[2],
          "class": "bar", "data-key": k, "data-series": s[0], "data-value": String(v) });
        bar.appendChild(svg("title", {}, name(k) + " · " + t(s[1]) + ": " + pct(groups[k][s[0]])));
        root.appendChild(bar);
      });
      root.appendChild(svg("text", { x: left + i * groupW + groupW / 2, y: H - bottom + 14, "text-anchor": "middle",
        "font-size": 10, fill: "#1d2733" }, name(k)));
      root.appendChild(svg("text", { x: left + i * groupW + groupW / 2, y: H - bottom + 26, "text-anchor": "middle",
        "font-size": 9, fill: "#6b7785" }, "n=" + groups[k].tickets));
    });
    box.appendChild(root);
    var legend = el("div", { cls: "legend" });
    SERIES.forEach(function (s) {
      var swatch = svg("svg", { width: 10, height: 10 });
      swatch.appendChild(svg("rect", { width: 10, height: 10, fill: s[2] }));
      legend.appendChild(el("span", {}, swatch, " " + t(s[1])));
    });
    box.appendChild(legend);
  }

  // ------------------------------------------------------------------------------------------ wiring
  Array.prototype.forEach.call(document.querySelectorAll("#desk-nav button"), function (b) {
    b.addEventListener("click", function () { show(b.getAttribute("data-page")); });
  });
  $("alerts-all").addEventListener("change", loadAlerts);
  $("callbacks-all").addEventListener("change", loadCallbacks);
  $("visits-engineer").addEventListener("change", loadVisits);
  $("visits-date").addEventListener("change", loadVisits);
  $("figures-load").addEventListener("click", loadFigures);
  $("ticket-complete").addEventListener("click", function () { ticketAction("complete", { remedy: $("ticket-remedy").value }); });
  $("ticket-reopen").addEventListener("click", function () { ticketAction("reopen", { reason: $("ticket-reason").value }); });
  $("ticket-form").addEventListener("submit", function (ev) { ev.preventDefault(); });

  document.addEventListener("agent:signed-in", function () {
    desk.signedIn = true;
    $("desk-nav").hidden = false;
    show("queue");
    clearInterval(desk.timer);
    desk.timer = setInterval(badges, 15000);
  });
  document.addEventListener("agent:signed-out", function () {
    desk.signedIn = false;
    clearInterval(desk.timer);
    $("desk-nav").hidden = true;
    Object.keys(PAGES).forEach(function (p) { if (p !== "queue") { $(PAGES[p]).hidden = true; } });
  });
  document.addEventListener("agent:language", function (ev) { desk.lang = ev.detail.lang; applyLanguage(); });
  applyLanguage();
})();
