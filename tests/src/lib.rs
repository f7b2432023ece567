//! End-to-end tests of the whole system through its public interfaces.
