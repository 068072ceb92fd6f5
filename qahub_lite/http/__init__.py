"""What the JSON API (api/) and the dashboard (web/) both need to answer a request: the services
built at start-up and the one error shape. Sits beside them, below both: imports core/ and
config only (and db/ for the Database type, until issue 13's storage move lands)."""
