//! Prints the prompt and training target of one example in every template.
//!
//! `cargo run -p chat-template --example render`

use chat_template::{ChatConfig, ChatTemplate};

fn main() {
    for template in ChatTemplate::ALL {
        let chat = ChatConfig::new(template);
        println!("== {template}");
        print!(
            "{}",
            chat.format_prompt(Some("Answer briefly."), "What is the capital of France?")
        );
        println!("{}", chat.format_answer("Paris"));
    }
}
