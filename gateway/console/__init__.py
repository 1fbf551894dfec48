"""The operator web console: a static single-page app over the admin JSON API."""
