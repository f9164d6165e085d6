"""The Quart app: routes by audience, schemas, error mapping, live broker, widget and demo page."""
