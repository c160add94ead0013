SELECT product_id, name, category, unit_price, updated_at
FROM products
