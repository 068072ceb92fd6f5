"""What the JSON API (api/) and the dashboard (web/) both need to answer a request: the services
built at start-up (services.py) and the one error shape (errors.py). It sits below both, so
neither imports the other; it may import core/ and config (and db/ for the Database type, until
issue 13's storage move lands), never api/, web/ or the clients."""
