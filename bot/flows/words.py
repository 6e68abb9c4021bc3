"""The words and intents the script's flows share: which intents open which request, what counts as a new request in
the middle of a look-up, and the patterns that read "I don't know", "stop", "that's all", an address, a rating."""
from __future__ import annotations

import re

PROBLEM_KINDS = {"complain": "complaint", "request_repair": "repair", "request_return": "return",
                 "request_exchange": "exchange"}
ONE_SHOT = ("ask_warranty", "ask_fee", "usage_help", "ask_service_center")
FACT_ENTITIES = {"product_model", "order_id", "phone", "address", "date_time", "ticket_number"}
DIGITS_RE = re.compile(r"\d[\d\s\-]{5,}\d")
ADDRESS_RE = re.compile(
    r"(省|市|区|县|镇|乡|村|路|街|道|巷|弄|号|栋|幢|楼|室|单元|小区|花园|大厦|"
    r"\broad\b|\brd\b|\bstreet\b|\bst\b|\bavenue\b|\bave\b|\blane\b|\bdistrict\b|\bcity\b|\bbuilding\b|\bblock\b|"
    r"\broom\b|\bapt\b|\bapartment\b|\bfloor\b|\bno\.)", re.IGNORECASE)
DONT_KNOW_RE = re.compile(r"(不知道|不清楚|不记得|忘了|找不到|看不到|没有|don'?t know|not sure|no idea|"
                          r"can'?t (find|remember|see)|forgot|dunno|idk)", re.IGNORECASE)
STOP_RE = re.compile(r"(算了|不用了|不要了|别问了|不聊了|取消|停|never ?mind|forget it|\bstop\b|\bcancel\b|quit|leave it)",
                     re.IGNORECASE)
DONE_RE = re.compile(r"(就这些|就这样|就这么多|没了|说完了|没有了|没别的|你们(打算|准备|看|说)?(该)?怎么(办|处理|解决|弄)|怎么办|怎么处理|"
                     r"给(我)?个说法|给个解决|what now|that'?s (all|it)|nothing else|what (are|will) you (going to )?do|"
                     r"how (will|are) you (going to )?(fix|sort|solve)|what can you do|so what now|i'?m done)", re.IGNORECASE)
MODEL_LEAD_RE = re.compile(r"^\s*(?:(?:产品)?型号(?:是|为)?[:：]?|(?:the )?model(?: number| no\.?| code)?(?: is)?[:：]?|"
                           r"it'?s)\s*", re.IGNORECASE)
ANYTIME_RE = re.compile(r"(随时|都可以|都行|全天|any ?time|whenever|all day)", re.IGNORECASE)
# The shop's side of things (orders, payment, invoices, coupons, delivery, accounts): an out-of-scope message about
# them gets pointed to where it is handled, not just told what this assistant does.
SHOP_RE = re.compile(r"(订单|下单|付款|支付|退款到账|发票|优惠券|券|价保|白条|物流|快递|配送|包裹|发货|出库|账号|账户|密码|会员|积分|"
                     r"\border|\bpayment|\bpay\b|invoice|receipt|coupon|discount|promo|deliver|shipping|\bship|parcel|"
                     r"package|courier|account|password|sign ?up|log ?in|newsletter|subscription|membership)", re.IGNORECASE)
RATING_RE = re.compile(r"(?<!\d)([1-5])\s*(分|星|stars?|/5)?(?!\d)")
CATEGORIES = ("air_conditioner", "fridge", "washing_machine", "water_heater", "tv", "range_hood", "dishwasher",
              "gas_hob", "microwave")
VISIT_KINDS = ("free_repair", "paid_repair", "repair_at_cost", "inspection", "revisit")
INSTALL_FACTS = ("purchase", "phone", "address", "contact_time")
GATHER_FACTS = {
    "complaint": ("product", "symptom", "model", "purchase", "phone", "address", "contact_time"),
    "repair": ("product", "symptom", "model", "purchase", "phone", "address", "contact_time"),
    "return": ("product", "purchase", "phone", "address", "contact_time"),
    "exchange": ("product", "symptom", "purchase", "phone", "address", "contact_time"),
    "installation": INSTALL_FACTS,
}
VISIT_REMEDIES = ("free_repair", "paid_repair", "repair_at_cost", "exchange", "return", "inspection", "revisit")
# A new request in the middle of a look-up (status, visit change) leaves the look-up and is served as such.
NEW_REQUESTS = ("complain", "request_repair", "request_return", "request_exchange", "request_installation",
                "reschedule_visit", "cancel_visit", "check_status", "request_human", "ask_warranty", "ask_fee",
                "usage_help", "ask_service_center")
SKIP_RE = re.compile(r"^\s*(跳过|不用了|没有了?|没了|无|skip|no|nothing|none|n/?a)\s*[.。!！]?\s*$", re.IGNORECASE)
