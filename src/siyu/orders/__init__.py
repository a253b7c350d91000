"""订单: carts, checkout and pricing, orders and their state machine, fulfilment, shipping and after-sales."""
