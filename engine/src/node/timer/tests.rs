//! Unit tests of the timer state, without spawning the actor.
