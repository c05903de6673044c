//! What a new user and an operator meet in their first week (issue "Survive real
//! operations"), one behaviour per module, in one test binary: many short processes, a
//! damaged or lost index, a full disk, the free-space floor, and the README's first command.

mod full_disk;
mod index_damaged_ssts;
mod index_lost_metadata;
mod min_free_space;
mod readme_first_command;
mod short_processes;
