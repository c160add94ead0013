SELECT sales_date, orders, order_lines, quantity, revenue
FROM agg_daily_sales
ORDER BY sales_date
