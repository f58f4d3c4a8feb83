//! Mapping between berth-api's wire types and berth-engine's model: request bodies to engine
//! specs ([`create`]), and engine objects back to what Docker clients read ([`container`],
//! [`image`], [`network`], [`system`]).

pub mod container;
pub mod create;
pub mod image;
pub mod network;
pub mod swarm;
pub mod system;
