"""Customers, channel identities and purchases: look-ups the conversation needs, and the demo seed."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import yaml
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload

from bot.nlu import phones
from bot.store.models import ChannelIdentity, Customer, Product, Purchase, Ticket, TicketEvent, TicketCounter, Visit, Attachment


@dataclass(frozen=True)
class PurchaseFacts:
    order_id: str
    category: str
    model: str
    purchase_date: date
    delivery_date: date | None
    installation_date: date | None
    opened: bool
    used: bool
    customer_phone: str | None


def purchase_facts(p: Purchase) -> PurchaseFacts:
    return PurchaseFacts(order_id=p.order_id, category=p.product.category, model=p.product.model,
                         purchase_date=p.purchase_date, delivery_date=p.delivery_date,
                         installation_date=p.installation_date, opened=p.opened, used=p.used,
                         customer_phone=p.customer.phone if p.customer else None)


class Records:
    def __init__(self, session: Session):
        self.session = session

    def customer_by_phone(self, phone: str) -> Customer | None:
        forms = phones.equivalent_forms(phone)
        return self.session.execute(select(Customer).where(Customer.phone.in_(forms))
                                    .order_by(Customer.id)).scalars().first()

    def customer_for(self, *, phone: str, name: str | None, language: str, channel: str, sender_id: str) -> Customer:
        customer = self.customer_by_phone(phone)
        if customer is None:
            customer = Customer(phone=phone, name=name, language=language)
            self.session.add(customer)
            self.session.flush()
        elif name and not customer.name:
            customer.name = name
        identity = self.session.execute(select(ChannelIdentity).where(
            ChannelIdentity.channel == channel, ChannelIdentity.sender_id == sender_id)).scalar_one_or_none()
        if identity is None:
            self.session.add(ChannelIdentity(customer=customer, channel=channel, sender_id=sender_id))
        return customer

    def purchase_by_order(self, order_id: str) -> Purchase | None:
        return self.session.execute(
            select(Purchase).where(Purchase.order_id == order_id.upper())
            .options(selectinload(Purchase.product), selectinload(Purchase.customer))
        ).scalar_one_or_none()

    def purchases_of(self, phone: str, category: str | None = None) -> list[Purchase]:
        stmt = (select(Purchase).join(Customer).join(Product).where(Customer.phone.in_(phones.equivalent_forms(phone)))
                .options(selectinload(Purchase.product)).order_by(Purchase.purchase_date.desc()))
        if category:
            stmt = stmt.where(Product.category == category)
        return list(self.session.execute(stmt).scalars())

    def product_by_model(self, model: str) -> Product | None:
        return self.session.execute(select(Product).where(func.upper(Product.model) == model.upper())
                                    .order_by(Product.id)).scalars().first()


def load_seed(session: Session, seed_file: Path, today: date, *, reset: bool = False) -> dict:
    """Load (or with reset=True reload) the demo catalogue and customers. Idempotent."""
    data = yaml.safe_load(Path(seed_file).read_text(encoding="utf-8"))
    if reset:
        for model in (Visit, Attachment, TicketEvent, Ticket, TicketCounter, Purchase, ChannelIdentity, Customer, Product):
            session.execute(delete(model))
    products = {}
    for row in data["products"]:
        product = session.execute(select(Product).where(Product.model == row["model"])).scalar_one_or_none()
        if product is None:
            product = Product(model=row["model"])
            session.add(product)
        product.category, product.name_zh, product.name_en = row["category"], row["name_zh"], row["name_en"]
        products[row["model"]] = product
    session.flush()
    n_purchases = 0
    for row in data["customers"]:
        customer = session.execute(select(Customer).where(Customer.phone == row["phone"])).scalar_one_or_none()
        if customer is None:
            customer = Customer(phone=row["phone"])
            session.add(customer)
        customer.name, customer.language = row["name"], row.get("language", "zh")
        session.flush()
        for p in row.get("purchases", []):
            purchase = session.execute(select(Purchase).where(Purchase.order_id == p["order_id"])).scalar_one_or_none()
            if purchase is None:
                purchase = Purchase(order_id=p["order_id"])
                session.add(purchase)
            ago = lambda key: today - timedelta(days=p[key]) if key in p else None  # noqa: E731
            purchase.customer = customer
            purchase.product = products[p["model"]]
            purchase.purchase_date = ago("purchased_days_ago")
            purchase.delivery_date = ago("delivered_days_ago")
            purchase.installation_date = ago("installed_days_ago")
            purchase.shop = p.get("shop")
            purchase.price = Decimal(p["price"]) if p.get("price") else None
            purchase.opened = p.get("opened", True)
            purchase.used = p.get("used", True)
            n_purchases += 1
    return {"products": len(products), "customers": len(data["customers"]), "purchases": n_purchases}


def engineers_json(uow) -> dict:
    """The service engineers for the desk's pickers: code, name in zh and en, city; ordered by code."""
    from sqlalchemy import select

    from bot.store.models import Engineer

    rows = uow.session.execute(select(Engineer).order_by(Engineer.code)).scalars()
    return {"items": [{"code": e.code, "name": {"zh": e.name_zh, "en": e.name_en}, "city": e.city} for e in rows]}
