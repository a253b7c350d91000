"""商品管理: categories, products (SPU) with a spec matrix of SKUs, images, import and export."""
