//! One loaded model serving many episodes: a worker thread owns the model and one
//! context and takes requests from a queue, so memory stays at one model's size. The KV
//! cache is reused across requests: a conversation only grows at the end, so the next
//! request's prompt usually starts with the tokens already in the cache.

use super::grammar::Constraint;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

/// What one request asks for.
#[derive(Debug, Clone)]
pub struct Sampling {
    pub max_tokens: u32,
    /// 0 means greedy.
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u32,
    /// Constrains what may be sampled (see `grammar`).
    pub grammar: Option<Constraint>,
}

#[derive(Debug, Clone)]
pub struct Generated {
    pub text: String,
    pub prompt_tokens: u64,
    /// Prompt tokens whose KV entries were reused from the previous request.
    pub reused_tokens: u64,
    pub output_tokens: u64,
    /// The reply hit `max_tokens` rather than ending by itself.
    pub truncated: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum GenerateError {
    #[error(
        "the conversation ({tokens} tokens) no longer fits the local model's context of {context} tokens"
    )]
    ContextFull { tokens: usize, context: u32 },
    #[error("{0}")]
    Failed(String),
}

impl From<String> for GenerateError {
    fn from(message: String) -> Self {
        GenerateError::Failed(message)
    }
}

struct Job {
    prompt: String,
    sampling: Sampling,
    reply: tokio::sync::oneshot::Sender<Result<Generated, GenerateError>>,
}

pub struct Engine {
    jobs: Mutex<mpsc::Sender<Job>>,
    pub path: PathBuf,
    pub context_tokens: u32,
}

/// llama.cpp's backend may be initialised once per process.
fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut b = LlamaBackend::init().map_err(|e| format!("cannot start llama.cpp: {e}"))?;
            b.void_logs();
            Ok(b)
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl Engine {
    /// Loads the model (once per path per process) and starts its worker.
    pub fn shared(path: &Path, context_tokens: u32) -> Result<Arc<Engine>, String> {
        static ENGINES: OnceLock<Mutex<Vec<Arc<Engine>>>> = OnceLock::new();
        let engines = ENGINES.get_or_init(Default::default);
        let mut list = engines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = list.iter().find(|e| e.path == path) {
            return Ok(e.clone());
        }
        let engine = Arc::new(Engine::load(path, context_tokens)?);
        list.push(engine.clone());
        Ok(engine)
    }

    pub fn load(path: &Path, context_tokens: u32) -> Result<Engine, String> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let model_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("local-model".into())
            .spawn(move || worker(&model_path, context_tokens, rx, ready_tx))
            .map_err(|e| format!("cannot start the model thread: {e}"))?;
        ready_rx
            .recv()
            .map_err(|_| "the model thread died while loading".to_string())??;
        Ok(Engine {
            jobs: Mutex::new(tx),
            path: path.to_path_buf(),
            context_tokens,
        })
    }

    pub async fn generate(
        &self,
        prompt: String,
        sampling: Sampling,
    ) -> Result<Generated, GenerateError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Job {
                prompt,
                sampling,
                reply,
            })
            .map_err(|_| GenerateError::Failed("the local model has stopped".into()))?;
        rx.await
            .map_err(|_| GenerateError::Failed("the local model dropped the request".into()))?
    }
}

fn worker(
    path: &Path,
    n_ctx: u32,
    jobs: mpsc::Receiver<Job>,
    ready: mpsc::Sender<Result<(), String>>,
) {
    let setup = || -> Result<_, String> {
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        Ok((backend, model))
    };
    let (backend, model) = match setup() {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as i32)
        .unwrap_or(2);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(512)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = match model.new_context(backend, params) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(format!(
                "cannot create a context of {n_ctx} tokens: {e}"
            )));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut cached: Vec<LlamaToken> = Vec::new();
    for job in jobs {
        let result = run(&model, &mut ctx, &mut cached, n_ctx, &job);
        if result.is_err() {
            // After a failure the cache's state is unknown: start the next one afresh.
            let _ = ctx.clear_kv_cache_seq(None, None, None);
            cached.clear();
        }
        let _ = job.reply.send(result);
    }
}

const BATCH: usize = 512;

fn run(
    model: &LlamaModel,
    ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
    cached: &mut Vec<LlamaToken>,
    n_ctx: u32,
    job: &Job,
) -> Result<Generated, GenerateError> {
    let vocab = model.vocab();
    let tokens = vocab.tokenize(job.prompt.as_bytes(), false, true);
    if tokens.is_empty() {
        return Err(GenerateError::Failed("empty prompt".into()));
    }
    // The reply may use what room is left, as hosted APIs cap output at the window.
    let room = (n_ctx as usize).saturating_sub(tokens.len());
    if room == 0 {
        return Err(GenerateError::ContextFull {
            tokens: tokens.len(),
            context: n_ctx,
        });
    }
    let max_tokens = (job.sampling.max_tokens as usize).min(room) as u64;
    // Reuse the cached prefix; always evaluate at least the last prompt token.
    let common = cached
        .iter()
        .zip(&tokens)
        .take_while(|(a, b)| a == b)
        .count();
    let keep = common.min(tokens.len() - 1);
    ctx.clear_kv_cache_seq(Some(0), Some(keep as u32), None)
        .map_err(|e| e.to_string())?;
    cached.truncate(keep);
    let mut batch = LlamaBatch::new(BATCH, 1);
    let mut last_index = 0;
    for (chunk_start, chunk) in tokens[keep..]
        .chunks(BATCH)
        .enumerate()
        .map(|(i, c)| (keep + i * BATCH, c))
    {
        batch.clear();
        for (i, t) in chunk.iter().enumerate() {
            let pos = chunk_start + i;
            let is_last = pos == tokens.len() - 1;
            batch
                .add(*t, pos as i32, &[0], is_last)
                .map_err(|e| e.to_string())?;
            if is_last {
                last_index = i as i32;
            }
        }
        ctx.decode(&mut batch)
            .map_err(|e| format!("decoding the prompt failed: {e}"))?;
    }
    cached.extend_from_slice(&tokens[keep..]);
    let s = &job.sampling;
    let mut sampler = Picker {
        grammar: s
            .grammar
            .as_ref()
            .map(|g| grammar_sampler(model, g))
            .transpose()?,
        chain: if s.temperature <= 0.0 {
            LlamaSampler::greedy()
        } else {
            LlamaSampler::chain_simple([
                LlamaSampler::top_p(s.top_p, 1),
                LlamaSampler::temp(s.temperature),
                LlamaSampler::dist(s.seed),
            ])
        },
    };
    let mut out = Vec::new();
    let mut produced = 0u64;
    let mut pos = tokens.len();
    let mut truncated = false;
    while let Some(token) = sampler.pick(ctx, last_index) {
        if vocab.is_eog(token) {
            break;
        }
        out.extend(vocab.token_to_piece(token, true, None));
        produced += 1;
        if produced >= max_tokens {
            truncated = true;
            break;
        }
        batch.clear();
        batch
            .add(token, pos as i32, &[0], true)
            .map_err(|e| e.to_string())?;
        ctx.decode(&mut batch)
            .map_err(|e| format!("decoding failed: {e}"))?;
        cached.push(token);
        pos += 1;
        last_index = 0;
    }
    Ok(Generated {
        text: String::from_utf8_lossy(&out).into_owned(),
        prompt_tokens: tokens.len() as u64,
        reused_tokens: keep as u64,
        output_tokens: produced,
        truncated,
    })
}

/// Samples the next token, under a grammar if there is one.
struct Picker {
    grammar: Option<LlamaSampler>,
    chain: LlamaSampler,
}

impl Picker {
    /// Checking a grammar against all ~150k tokens costs more than generating one, so
    /// (as llama.cpp's own sampler does) sample freely first and check only that token;
    /// if the grammar rejects it, sample again from the tokens the grammar allows.
    /// `None` ends the reply: llama.cpp aborts the process if a grammar is handed a token
    /// it does not allow, so no such token is ever accepted.
    fn pick(
        &mut self,
        ctx: &llama_cpp_2::context::LlamaContext<'_>,
        index: i32,
    ) -> Option<LlamaToken> {
        let mut candidates = ctx.token_data_array_ith(index);
        self.chain.apply(&mut candidates);
        let mut token = candidates.selected_token()?;
        if let Some(grammar) = &mut self.grammar {
            if !allows(grammar, token) {
                let mut allowed = ctx.token_data_array_ith(index);
                grammar.apply(&mut allowed);
                self.chain.apply(&mut allowed);
                token = allowed.selected_token()?;
                // Every token masked (a dead end): stop rather than break the grammar.
                if !allows(grammar, token) {
                    return None;
                }
            }
            grammar.accept(token);
        }
        self.chain.accept(token);
        Some(token)
    }
}

fn allows(grammar: &mut LlamaSampler, token: LlamaToken) -> bool {
    let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 0.0)], false);
    grammar.apply(&mut one);
    one.data[0].logit() != f32::NEG_INFINITY
}

/// A sampler that masks every token the grammar does not allow next.
fn grammar_sampler(model: &LlamaModel, g: &Constraint) -> Result<LlamaSampler, String> {
    LlamaSampler::grammar(model, &g.gbnf, "root")
        .map_err(|e| format!("the tool-call grammar was refused: {e}"))
}
