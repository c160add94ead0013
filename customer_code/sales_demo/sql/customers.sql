-- Customers changed in the window (the runner adds: updated_at > :start AND updated_at <= :end).
SELECT customer_id, name, email, country, created_at, updated_at
FROM customers
