//! Integration tests of retake-comfyui against the fake ComfyUI server (one test binary).

mod cancel;
mod dispatch;
mod faults;
mod fleet;
mod helpers;
mod protocol;
mod reconcile;
mod run;
mod validation;
mod workflow;
