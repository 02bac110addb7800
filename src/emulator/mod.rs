pub mod google;
pub mod hitolink;
