//! Generation backends that ship with retake.

pub mod comfyui;
pub mod gpu_clock;
pub mod scenario;
pub mod simulated;

pub use scenario::Scenario;
pub use simulated::SimulatedBackend;
