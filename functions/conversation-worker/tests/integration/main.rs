//! Integration tests of the conversation worker: real PostgreSQL, OpenAI and Meta as HTTP
//! fakes that record what they were sent.

mod fakes;
mod helpers;
mod replies;
mod send_parity;
mod safety;
mod sqs;
mod storing;
