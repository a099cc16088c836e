//! The `meetings` function's routes against a real database and a fake Google.

mod helpers;
mod integrations;
mod meetings;
