"""sales_demo's own functions: a deterministic simulation of an operational shop database.

``simulate_day`` creates the source on first use (customers, products and 30 days of orders from
2024-01-01) and then, each time it runs, adds the next day: new orders with their lines, status
changes to recent orders, a few customer and price updates. The same number of calls always gives
the same database.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

from script_factory.context import RunContext
from script_factory.task import StepResult

FIRST_DAY = date(2024, 1, 1)
HISTORY_DAYS = 30
CUSTOMERS = 200
PRODUCTS = 50
COUNTRIES = ["FR", "DE", "ES", "IT", "NL", "BE", "PL", "SE"]
CATEGORIES = ["books", "games", "garden", "kitchen", "music", "sports", "toys"]
NEXT_STATUS = {"new": "paid", "paid": "shipped"}

SCHEMA = [
    """CREATE TABLE customers (
        customer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, country TEXT,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE products (
        product_id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT,
        unit_price NUMERIC NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE orders (
        order_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers,
        status TEXT NOT NULL, ordered_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE order_lines (
        order_id INTEGER NOT NULL REFERENCES orders, line_number INTEGER NOT NULL,
        product_id INTEGER NOT NULL REFERENCES products, quantity INTEGER NOT NULL,
        unit_price NUMERIC NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (order_id, line_number))""",
    "CREATE INDEX ix_orders_updated ON orders (updated_at)",
    "CREATE INDEX ix_order_lines_updated ON order_lines (updated_at)",
]


def simulate_day(ctx: RunContext, *, connection: str) -> StepResult:
    """Add one simulated day to the source database of ``connection`` (created on first use)."""
    from sqlalchemy import text

    engine = ctx.engine(connection)
    with engine.begin() as conn:
        exists = conn.execute(text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'orders'")).first()
        if not exists:
            for statement in SCHEMA:
                conn.execute(text(statement))
            _seed(conn)
            ctx.logger.info("created the demo source with %d days of history from %s", HISTORY_DAYS, FIRST_DAY)
        last = conn.execute(text("SELECT max(date(ordered_at)) FROM orders")).scalar_one()
        day = date.fromisoformat(last) + timedelta(days=1)
        counts = _simulate(conn, day)
    message = f"simulated {day}: {counts['orders']} new orders, {counts['updates']} updated orders"
    ctx.logger.info(message)
    return StepResult(rows=counts["orders"] + counts["updates"], message=message)


def _seed(conn: Any) -> None:
    from sqlalchemy import text

    rng = random.Random(20240101)
    start = datetime.combine(FIRST_DAY, datetime.min.time())
    customers = [
        {
            "id": i,
            "name": f"Customer {i:04d}",
            "email": f"customer{i}@example.com",
            "country": rng.choice(COUNTRIES),
            "at": _stamp(start + timedelta(seconds=i)),
        }
        for i in range(1, CUSTOMERS + 1)
    ]
    conn.execute(text("INSERT INTO customers VALUES (:id, :name, :email, :country, :at, :at)"), customers)
    products = [
        {
            "id": i,
            "name": f"Product {i:03d}",
            "category": rng.choice(CATEGORIES),
            "price": round(rng.uniform(2, 120), 2),
            "at": _stamp(start + timedelta(seconds=i)),
        }
        for i in range(1, PRODUCTS + 1)
    ]
    conn.execute(text("INSERT INTO products VALUES (:id, :name, :category, :price, :at)"), products)
    for offset in range(HISTORY_DAYS):
        _simulate(conn, FIRST_DAY + timedelta(days=offset))


def _simulate(conn: Any, day: date) -> dict[str, int]:
    """Orders of ``day``, plus status changes to the previous week's orders; deterministic per day."""
    from sqlalchemy import text

    rng = random.Random(day.toordinal())
    midnight = datetime.combine(day, datetime.min.time())
    next_order = conn.execute(text("SELECT coalesce(max(order_id), 0) + 1 FROM orders")).scalar_one()
    prices = dict(conn.execute(text("SELECT product_id, unit_price FROM products")).all())
    orders, lines = [], []
    for n in range(rng.randint(30, 50)):
        order_id = next_order + n
        at = _stamp(midnight + timedelta(seconds=rng.randint(0, 86_399)))
        orders.append({"id": order_id, "customer": rng.randint(1, CUSTOMERS), "at": at})
        for line in range(1, rng.randint(1, 4) + 1):
            product = rng.randint(1, PRODUCTS)
            lines.append(
                {
                    "order": order_id,
                    "line": line,
                    "product": product,
                    "qty": rng.randint(1, 5),
                    "price": prices[product],
                    "at": at,
                }
            )
    conn.execute(text("INSERT INTO orders VALUES (:id, :customer, 'new', :at, :at)"), orders)
    conn.execute(text("INSERT INTO order_lines VALUES (:order, :line, :product, :qty, :price, :at)"), lines)
    week_ago = _stamp(midnight - timedelta(days=7))
    recent = conn.execute(
        text(
            "SELECT order_id, status FROM orders WHERE ordered_at >= :since AND ordered_at < :day "
            "AND status IN ('new', 'paid') ORDER BY order_id"
        ),
        {"since": week_ago, "day": _stamp(midnight)},
    ).all()
    updates = []
    for order_id, status in rng.sample(recent, min(len(recent), rng.randint(5, 12))):
        new_status = "cancelled" if rng.random() < 0.1 else NEXT_STATUS[status]
        updates.append(
            {"id": order_id, "status": new_status, "at": _stamp(midnight + timedelta(seconds=rng.randint(0, 86_399)))}
        )
    if updates:
        conn.execute(text("UPDATE orders SET status = :status, updated_at = :at WHERE order_id = :id"), updates)
    customer = rng.randint(1, CUSTOMERS)
    conn.execute(
        text("UPDATE customers SET email = :email, updated_at = :at WHERE customer_id = :id"),
        {
            "id": customer,
            "email": f"customer{customer}.{day:%Y%m%d}@example.com",
            "at": _stamp(midnight + timedelta(hours=12)),
        },
    )
    return {"orders": len(orders), "updates": len(updates)}


def _stamp(moment: datetime) -> str:
    """Timestamps are stored as 'YYYY-MM-DD HH:MM:SS' text, SQLite's own convention."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")
