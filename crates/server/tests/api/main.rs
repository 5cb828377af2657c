//! The HTTP API end to end: the real server on port 0, a fresh database per test, and every test
//! body run against both stores (`contract_tests!`).

mod helpers;

mod comfyui;
mod concurrency;
mod docs;
mod errors;
mod events;
mod external_qa;
mod hardening;
mod media;
mod metrics;
mod operators;
mod ops;
mod permissions;
mod projects;
mod review;
mod scene_types;
mod segments;
mod tokens;
