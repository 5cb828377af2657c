//! PostgreSQL-only behaviour: schema invariants, wake-ups across stores, listener reconnects.
