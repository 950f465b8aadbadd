//! The read API over the store: [`tail`] (`GET /api/v1/tail`, the live tail as server-sent
//! events).

pub mod tail;
