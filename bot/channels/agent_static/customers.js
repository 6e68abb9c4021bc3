/* The customers page of the agent console (search by phone, name, order or ticket number; the profile with
   purchases, tickets, visits and conversations on every channel) and the case card's editor (add or correct a fact,
   accept one the customer typed to the agent). Plain JS; console.js tells this file through the document events
   agent:signed-in, agent:signed-out, agent:language and agent:card, and reloads the case on agent:reload-case. */
(function () {
  "use strict";

  var I18N = {
    zh: {
      nav_customers: "客户", customers_title: "客户档案", search_placeholder: "手机号、姓名、订单号或工单号",
      search: "搜索", no_customers: "没有找到客户", col_name: "姓名", col_phone: "电话", col_tickets: "工单",
      col_purchases: "购买", col_since: "建档", col_matched: "匹配", prev: "上一页", next: "下一页",
      page_of: "第 {p} / {n} 页，共 {t} 条", matched: { phone: "电话", name: "姓名", order: "订单号", ticket: "工单号" },
      sec_profile: "客户", sec_purchases: "购买记录", sec_tickets: "工单", sec_visits: "上门", sec_conversations: "会话（各渠道）",
      col_order: "订单号", col_product: "产品", col_model: "型号", col_bought: "购买日期", col_shop: "店铺",
      col_ticket: "工单号", col_channel: "渠道", col_kind: "类型", col_status: "状态", col_remedy: "处理方案",
      col_rating: "评分", col_created: "创建时间", col_when: "时间", col_engineer: "工程师", col_conversation: "会话",
      col_handoffs: "转人工", col_last: "最近", identities: "渠道身份", none: "—",
      edit_title: "补充 / 更正信息", field: { address: "地址", model: "型号", phone: "电话", purchase_date: "购买日期",
        symptom: "故障" }, save: "保存", saved: "已保存：{f}", unchanged: "没有变化",
      suggested: "客户对您说的信息", use: "采用", repeat: "重复投诉：90 天内已有 {n} 张工单（{list}）",
      errors: { bad_phone: "这不是有效的电话号码", bad_address: "地址需包含路、楼、区或城市等", bad_model: "型号格式不对",
        bad_date: "无法识别的日期", bad_date_future: "购买日期不能晚于今天", bad_symptom: "请写清故障",
        empty_value: "请先填写", forbidden: "请先接管会话", unknown_fact: "不能修改这一项" }
    },
    en: {
      nav_customers: "Customers", customers_title: "Customers", search_placeholder: "Phone, name, order or ticket number",
      search: "Search", no_customers: "No customer found", col_name: "Name", col_phone: "Phone", col_tickets: "Tickets",
      col_purchases: "Purchases", col_since: "Since", col_matched: "Matched", prev: "Previous", next: "Next",
      page_of: "Page {p} of {n}, {t} in all", matched: { phone: "phone", name: "name", order: "order", ticket: "ticket" },
      sec_profile: "Customer", sec_purchases: "Purchases", sec_tickets: "Tickets", sec_visits: "Visits",
      sec_conversations: "Conversations (every channel)", col_order: "Order", col_product: "Product", col_model: "Model",
      col_bought: "Bought", col_shop: "Shop", col_ticket: "Ticket", col_channel: "Channel", col_kind: "Kind",
      col_status: "Status", col_remedy: "Remedy", col_rating: "Rating", col_created: "Created", col_when: "When",
      col_engineer: "Engineer", col_conversation: "Conversation", col_handoffs: "Hand-offs", col_last: "Last",
      identities: "Channel identities", none: "—",
      edit_title: "Add or correct a fact", field: { address: "Address", model: "Model", phone: "Phone",
        purchase_date: "Purchase date", symptom: "Symptom" }, save: "Save", saved: "Saved: {f}", unchanged: "No change",
      suggested: "What the customer told you", use: "Use", repeat: "Repeat complaint: {n} earlier ticket(s) in 90 days ({list})",
      errors: { bad_phone: "Not a valid phone number", bad_address: "An address names a road, building, district or city",
        bad_model: "Not a model code", bad_date: "Not a date I can read", bad_date_future: "A purchase date cannot be in the future",
        bad_symptom: "Say what is wrong", empty_value: "Fill it in first", forbidden: "Take the conversation over first",
        unknown_fact: "That cannot be edited" }
    }
  };
  var FIELDS = ["address", "model", "phone", "purchase_date", "symptom"];
  var my = { lang: localStorage.getItem("agentLang") || "zh", query: "", page: 1, customer: null, ticketPage: 1,
    card: null, conversation: null };
  var el = window.AgentConsoleKit.el;
  var label = window.AgentConsoleKit.label;

  function $(id) { return document.getElementById(id); }
  function t(key, values) {
    var text = I18N[my.lang][key];
    if (text === undefined) { text = I18N.en[key] !== undefined ? I18N.en[key] : key; }
    if (values) { Object.keys(values).forEach(function (k) { text = text.replace("{" + k + "}", values[k]); }); }
    return text;
  }
  function sub(group, key) { return (I18N[my.lang][group] || {})[key] || key; }
  function when(iso) {
    if (!iso) { return t("none"); }
    return new Date(iso).toLocaleString(my.lang === "zh" ? "zh-CN" : "en-GB",
      { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }
  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    var token = sessionStorage.getItem("agentToken");
    if (token) { headers["Authorization"] = "Bearer " + token; }
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    return fetch(path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (data) {
          if (!resp.ok) { var err = new Error(data.detail || data.error || resp.statusText); err.code = data.error; throw err; }
          return data;
        });
      });
  }
  function table(headers, rows) {
    var head = el("tr");
    headers.forEach(function (h) { head.appendChild(el("th", { text: t(h) })); });
    var body = el("tbody");
    rows.forEach(function (cells) {
      var tr = el("tr");
      cells.forEach(function (c) {
        var td = el("td");
        if (c instanceof Node) { td.appendChild(c); } else { td.textContent = c === null || c === undefined || c === "" ? t("none") : String(c); }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    return el("table", { cls: "grid" }, el("thead", {}, head), body);
  }

  // ------------------------------------------------------------------------------------------ the customers page
  function search(page) {
    my.query = $("customer-q").value.trim();
    my.page = page || 1;
    if (!my.query) { return; }
    api("GET", "api/customers?q=" + encodeURIComponent(my.query) + "&page=" + my.page + "&per_page=20")
      .then(renderResults).catch(function (err) { $("customers-error").textContent = err.message; $("customers-error").hidden = false; });
  }
  function renderResults(data) {
    $("customers-error").hidden = true;
    var box = $("customers-results");
    box.textContent = "";
    if (!data.items.length) { box.appendChild(el("p", { cls: "muted", text: t("no_customers") })); return; }
    box.appendChild(table(["col_name", "col_phone", "col_tickets", "col_purchases", "col_since", "col_matched"],
      data.items.map(function (c) {
        var open = el("a", { href: "#", cls: "customer-link", "data-customer": String(c.id), text: c.name || t("none") });
        open.addEventListener("click", function (ev) { ev.preventDefault(); loadProfile(c.id, 1); });
        return [open, c.phone, c.tickets, c.purchases, when(c.since), sub("matched", c.matched_by)];
      })));
    box.appendChild(pager(data, function (p) { search(p); }));
    if (data.items.length === 1 && data.page === 1) { loadProfile(data.items[0].id, 1); }
  }
  function pager(data, go) {
    var bar = el("div", { cls: "pager small" }, t("page_of", { p: data.page, n: data.pages, t: data.total }));
    if (data.page > 1) { bar.appendChild(button(t("prev"), function () { go(data.page - 1); })); }
    if (data.page < data.pages) { bar.appendChild(button(t("next"), function () { go(data.page + 1); })); }
    return bar;
  }
  function button(text, onClick, cls) {
    var b = el("button", { type: "button", cls: cls || "", text: text });
    b.addEventListener("click", onClick);
    return b;
  }
  function loadProfile(id, page) {
    my.customer = id;
    my.ticketPage = page;
    return api("GET", "api/customers/" + id + "?page=" + page + "&per_page=20").then(renderProfile);
  }
  function renderProfile(p) {
    var box = $("customer-profile");
    box.hidden = false;
    box.textContent = "";
    var c = p.customer;
    box.appendChild(el("h3", { text: t("sec_profile") + " · " + (c.name || t("none")) }));
    box.appendChild(el("p", { cls: "small", text: [c.phone || t("none"), c.language, when(c.since)].join(" · ") }));
    if (c.identities.length) {
      box.appendChild(el("p", { cls: "small muted", text: t("identities") + ": " + c.identities.map(function (i) {
        return label("channels", i.channel) + " " + i.sender_id; }).join(", ") }));
    }
    box.appendChild(el("h3", { text: t("sec_purchases") }));
    box.appendChild(table(["col_order", "col_product", "col_model", "col_bought", "col_shop"], p.purchases.map(function (x) {
      return [x.order_id, x.name ? x.name[my.lang] : label("products", x.category), x.model, x.purchase_date, x.shop];
    })));
    box.appendChild(el("h3", { text: t("sec_tickets") }));
    var tickets = table(["col_ticket", "col_channel", "col_kind", "col_status", "col_product", "col_remedy", "col_rating", "col_created"],
      p.tickets.items.map(function (x) {
        return [x.number, label("channels", x.channel), x.kind, x.status, x.product ? label("products", x.product) : null,
          x.remedy ? label("remedies", x.remedy) : null, x.satisfaction ? "★" + x.satisfaction : null, when(x.created_at)];
      }));
    tickets.id = "customer-tickets";
    box.appendChild(tickets);
    box.appendChild(pager(p.tickets, function (pg) { loadProfile(my.customer, pg); }));
    box.appendChild(el("h3", { text: t("sec_visits") }));
    box.appendChild(table(["col_ticket", "col_when", "col_engineer", "col_status"], p.visits.map(function (v) {
      return [v.ticket, when(v.start), v.engineer ? v.engineer[my.lang] : null, v.status];
    })));
    box.appendChild(el("h3", { text: t("sec_conversations") }));
    box.appendChild(table(["col_channel", "col_conversation", "col_tickets", "col_handoffs", "col_last"], p.conversations.map(function (x) {
      return [label("channels", x.channel), x.conversation_id, x.tickets.join(", "), x.handoffs, when(x.last_at)];
    })));
  }

  // ------------------------------------------------------------------------------------------ the card editor
  function renderEditor(card, conversation) {
    if (conversation !== my.conversation) { my.last = null; }
    my.card = card;
    my.conversation = conversation;
    var box = $("card");
    if (!box || !card) { return; }
    if (card.repeat_complaint) {
      var r = card.repeat_complaint;
      box.insertBefore(el("p", { cls: "repeat-flag", id: "repeat-flag",
        text: t("repeat", { n: r.earlier, list: r.tickets.join(", ") }) }), box.firstChild);
    }
    if (card.masked) { return; }  // only the agent holding the case edits it
    var form = el("form", { id: "fact-form", cls: "fact-form" });
    var select = el("select", { id: "fact-field", "aria-label": "field" });
    FIELDS.forEach(function (f) { select.appendChild(el("option", { value: f, text: sub("field", f) })); });
    if (my.last) { select.value = my.last.field; }
    var input = el("input", { id: "fact-value", "aria-label": "value" });
    var result = el("p", { id: "fact-result", cls: my.last ? my.last.cls : "small", role: "status",
      text: my.last ? my.last.text : "" });  // the card is drawn anew after a save: the answer stays
    form.appendChild(el("h3", { text: t("edit_title") }));
    form.appendChild(select);
    form.appendChild(input);
    form.appendChild(el("button", { type: "submit", id: "fact-save", cls: "primary", text: t("save") }));
    form.appendChild(result);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); save(select.value, input.value, result); });
    box.appendChild(form);
    var offered = card.suggested_facts || [];
    if (offered.length) {
      box.appendChild(el("h3", { text: t("suggested") }));
      var list = el("ul", { cls: "list suggestions", id: "fact-suggestions" });
      offered.forEach(function (s) {
        list.appendChild(el("li", {}, el("b", { text: sub("field", s.field) + "：" }), el("span", { text: s.value + " " }),
          button(t("use"), function () { save(s.field, s.value, result); }, "small-button")));
      });
      box.appendChild(list);
    }
  }
  function save(field, value, result) {
    api("POST", "api/conversations/" + encodeURIComponent(my.conversation) + "/facts", { field: field, value: value })
      .then(function (data) {
        result.textContent = data.changed.length ? t("saved", { f: sub("field", field) + " = " + data.value }) : t("unchanged");
        result.className = "small ok";
        my.last = { text: result.textContent, cls: result.className, field: field };
        document.dispatchEvent(new CustomEvent("agent:reload-case"));  // console.js shows the card anew
      })
      .catch(function (err) {
        result.textContent = (I18N[my.lang].errors[err.code] || err.message);
        result.className = "small error";
        my.last = { text: result.textContent, cls: result.className, field: field };
      });
  }

  // ------------------------------------------------------------------------------------------ wiring
  function applyLanguage() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n-customers]"), function (node) {
      node.textContent = t(node.getAttribute("data-i18n-customers"));
    });
    $("customer-q").setAttribute("placeholder", t("search_placeholder"));
    if (my.query) { search(my.page); }
    if (my.customer) { loadProfile(my.customer, my.ticketPage); }
  }
  Array.prototype.forEach.call(document.querySelectorAll("#desk-nav button"), function (b) {
    b.addEventListener("click", function () {  // desk.js hides its own pages; this one is ours
      var mine = b.getAttribute("data-page") === "customers";
      $("customers-view").hidden = !mine;
      if (mine) { $("customer-q").focus(); }
    });
  });
  $("customers-form").addEventListener("submit", function (ev) { ev.preventDefault(); search(1); });
  document.addEventListener("agent:card", function (ev) { renderEditor(ev.detail.card, ev.detail.conversation); });
  document.addEventListener("agent:signed-out", function () {
    $("customers-view").hidden = true;
    $("customer-profile").hidden = true;
    $("customers-results").textContent = "";
    my.query = ""; my.customer = null;
  });
  document.addEventListener("agent:language", function (ev) { my.lang = ev.detail.lang; applyLanguage(); });
  applyLanguage();
})();
