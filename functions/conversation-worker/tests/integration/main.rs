//! Integration tests of the conversation worker: real PostgreSQL, OpenAI and Meta as HTTP
//! fakes that record what they were sent.

mod fakes;
mod helpers;
mod meetings;
mod replies;
mod safety;
mod send_parity;
mod sqs;
mod storing;
