pub mod google;
pub mod hitolink;
pub mod inprocess;
