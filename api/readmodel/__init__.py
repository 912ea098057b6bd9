"""The buyer-facing read model: passports, the scan log and clone rules, locations and product
master data, as the scan API (api/) serves them."""
