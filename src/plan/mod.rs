//! Plans: what apply would do, computed from the render and the live state.

pub mod inventory;
#[cfg(test)]
pub mod memory;
pub mod order;
