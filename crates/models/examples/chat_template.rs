//! Prints a GGUF file's embedded chat template (to compare with ours).
fn main() {
    let path = std::env::args().nth(1).expect("path to a .gguf");
    let mut backend = llama_cpp_2::llama_backend::LlamaBackend::init().unwrap();
    backend.void_logs();
    let params = llama_cpp_2::model::params::LlamaModelParams::default().with_vocab_only(true);
    let model = llama_cpp_2::model::LlamaModel::load_from_file(&backend, &path, &params).unwrap();
    println!(
        "{}",
        model
            .meta_val_str("tokenizer.chat_template")
            .unwrap_or_default()
    );
}
