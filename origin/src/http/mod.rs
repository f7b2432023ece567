//! What every route shares: the error type and its mapping ([`error`]), extractors whose rejections are
//! that error ([`extract`]), authorization by type ([`auth`]), paging ([`page`]), and the dashboard's
//! sessions and CSRF protection ([`session`], [`csrf`]).

pub mod auth;
pub mod csrf;
pub mod error;
pub mod extract;
pub mod page;
pub mod session;
pub mod upload;

pub use auth::{Admin, Editor, PostsConversions, Viewer};
pub use error::ApiError;
pub use extract::{JsonBody, Path, Query};
