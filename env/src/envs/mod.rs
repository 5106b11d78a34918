//! Built-in classic-control envs, matching Gymnasium 1.4.0 bit for bit.
//! (Being written: CartPole, Acrobot, MountainCar, MountainCarContinuous, Pendulum.)

use crate::error::Result;
use crate::registry::Registry;

/// Registers every built-in env in `registry`.
pub fn register_builtins(_registry: &mut Registry) -> Result<()> {
    Ok(())
}
