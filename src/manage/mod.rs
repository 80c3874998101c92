//! Management: the Azure Media Services v3 REST API (ARM and MK.IO path shapes) over the
//! document store, so locators, policies and filters are published without a restart. It
//! runs on its own listener (`[api]`), bearer-token protected.

pub mod api;
pub mod auth;
pub mod catalog;
pub mod error;
pub mod model;
mod paths;
mod route;
pub mod server;
