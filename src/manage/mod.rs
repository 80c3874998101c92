//! Management: the Azure Media Services v3 REST API (ARM and MK.IO path shapes) over the
//! document store, so locators, policies and filters are published without a restart.

pub mod catalog;
pub mod model;
