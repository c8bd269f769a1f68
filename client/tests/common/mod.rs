#![allow(dead_code)]
pub mod vectors;
