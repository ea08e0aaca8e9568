//! One loaded model serving many episodes: a worker thread owns the model and one
//! context and takes requests from a queue, so memory stays at one model's size.
//!
//! The context holds up to [`SEQUENCES`] conversations at once (as many as the run
//! has episodes at once: each costs its share of KV memory), each in its own sequence of
//! the KV cache, and the worker decodes the requests it is answering together, one token of
//! each per step (continuous batching). Episodes go on side by side: one with a long
//! reply, or waiting on a slow command, does not hold back the others. (What batching
//! saves depends on the CPU: on two cores, llama.cpp's kernels for Q4_K redo most of the
//! work per row, and 4 replies at once made 17.9 tokens/s in all against 12.5 alone.) A
//! conversation only grows at the end, so a request goes to the sequence that already
//! holds its episode's previous turn, and only the new tokens are evaluated.
//!
//! Replies repeat exactly for the same requests in the same order one at a time. When
//! requests overlap, which ones share a step depends on timing, and batches of other
//! shapes round differently: sampled replies may then differ between runs.

use super::SEQUENCES;
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
use std::collections::VecDeque;
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
    /// The most other requests decoded in one step with this one: 0 means it was computed
    /// alone, as at `--concurrency 1`, where a run repeats exactly.
    pub batched_with: u32,
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
    /// Conversations its KV cache keeps at once.
    pub sequences: usize,
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
    /// Loads the model (once per path and number of sequences per process) and starts
    /// its worker.
    pub fn shared(
        path: &Path,
        context_tokens: u32,
        sequences: usize,
    ) -> Result<Arc<Engine>, String> {
        static ENGINES: OnceLock<Mutex<Vec<Arc<Engine>>>> = OnceLock::new();
        let engines = ENGINES.get_or_init(Default::default);
        let mut list = engines.lock().unwrap_or_else(|e| e.into_inner());
        let sequences = sequences.clamp(1, SEQUENCES);
        if let Some(e) = list
            .iter()
            .find(|e| e.path == path && e.sequences == sequences)
        {
            return Ok(e.clone());
        }
        let engine = Arc::new(Engine::load(path, context_tokens, sequences)?);
        list.push(engine.clone());
        Ok(engine)
    }

    /// Loads the model with a KV cache of `sequences` conversations (1 to [`SEQUENCES`])
    /// of `context_tokens` each.
    pub fn load(path: &Path, context_tokens: u32, sequences: usize) -> Result<Engine, String> {
        let sequences = sequences.clamp(1, SEQUENCES);
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let model_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("local-model".into())
            .spawn(move || worker(&model_path, context_tokens, sequences, rx, ready_tx))
            .map_err(|e| format!("cannot start the model thread: {e}"))?;
        ready_rx
            .recv()
            .map_err(|_| "the model thread died while loading".to_string())??;
        Ok(Engine {
            jobs: Mutex::new(tx),
            path: path.to_path_buf(),
            context_tokens,
            sequences,
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
    sequences: usize,
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
    // A KV cache that is not unified gives each sequence its own `n_ctx` tokens.
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx * sequences as u32))
        .with_n_seq_max(sequences as u32)
        .with_kv_unified(false)
        .with_n_batch(BATCH as u32)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = match model.new_context(backend, params) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(format!(
                "cannot create a context of {sequences} x {n_ctx} tokens: {e}"
            )));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut slots: Vec<Slot> = (0..sequences).map(|_| Slot::default()).collect();
    let mut waiting: VecDeque<(Job, Vec<LlamaToken>)> = VecDeque::new();
    let mut active: Vec<Active> = Vec::new();
    let mut batch = LlamaBatch::new(BATCH, 1);
    let mut clock = 0u64;
    loop {
        // Block only when there is nothing to compute.
        let first = (active.is_empty() && waiting.is_empty()).then(|| jobs.recv());
        if let Some(Err(_)) = first {
            return;
        }
        for job in first.into_iter().flatten().chain(jobs.try_iter()) {
            match tokenize(&model, n_ctx, &job) {
                Ok(tokens) => waiting.push_back((job, tokens)),
                Err(e) => {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
        // A request whose episode has ended (its time ran out) is dropped, waiting or
        // being answered, so it stops taking steps from the others.
        waiting.retain(|(job, _)| !job.reply.is_closed());
        active.retain(|a| !a.job.reply.is_closed());
        // Requests in their order of arrival.
        while let Some((_, tokens)) = waiting.front() {
            let Some(Placement { slot, copy_from }) = place(&slots, &active, tokens) else {
                break;
            };
            let (job, tokens) = waiting.pop_front().expect("not empty");
            clock += 1;
            if let Some(donor) = copy_from {
                // Whole sequences only, across KV streams; `start` trims what follows
                // the shared start.
                let _ = ctx.copy_kv_cache_seq(donor as i32, slot as i32, None, None);
                slots[slot].tokens = slots[donor].tokens.clone();
            }
            match start(
                &model,
                &mut ctx,
                (slot, &mut slots[slot]),
                n_ctx,
                job,
                tokens,
                clock,
            ) {
                Ok(a) => active.push(a),
                Err((job, e)) => {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
        if active.is_empty() {
            continue;
        }
        batch.clear();
        let decoded = fill(&mut batch, &mut active, &mut slots).and_then(|()| {
            ctx.decode(&mut batch)
                .map_err(|e| format!("decoding failed: {e}"))
        });
        if let Err(e) = decoded {
            // The state of every sequence in the batch is unknown: fail their requests
            // and start those sequences afresh.
            for a in active.drain(..) {
                let _ = ctx.clear_kv_cache_seq(Some(a.slot as u32), None, None);
                slots[a.slot].tokens.clear();
                let _ = a.job.reply.send(Err(GenerateError::Failed(e.clone())));
            }
            continue;
        }
        let vocab = model.vocab();
        let mut i = 0;
        while i < active.len() {
            let a = &mut active[i];
            let Some(index) = a.logits.take() else {
                i += 1;
                continue;
            };
            let token = a.picker.pick(&ctx, index).filter(|t| !vocab.is_eog(*t));
            if let Some(token) = token {
                a.out.extend(vocab.token_to_piece(token, true, None));
                a.produced += 1;
                a.truncated = a.produced >= a.max_tokens;
                a.next = Some(token);
            }
            if token.is_none() || a.truncated {
                let a = active.remove(i);
                let _ = a.job.reply.send(Ok(Generated {
                    text: String::from_utf8_lossy(&a.out).into_owned(),
                    prompt_tokens: a.prompt.len() as u64,
                    reused_tokens: a.reused as u64,
                    output_tokens: a.produced,
                    truncated: a.truncated,
                    batched_with: a.batched_with,
                }));
            } else {
                i += 1;
            }
        }
    }
}

/// Tokens the engine decodes in one step, across all the requests it serves.
const BATCH: usize = 512;

/// What the KV cache holds for one sequence.
#[derive(Default)]
struct Slot {
    tokens: Vec<LlamaToken>,
    /// When a request last started in it, for least-recently-used choice.
    used: u64,
}

/// A request being answered in its sequence.
struct Active {
    job: Job,
    slot: usize,
    prompt: Vec<LlamaToken>,
    /// Prompt tokens in the KV cache so far; those before `reused` were there already.
    fed: usize,
    reused: usize,
    /// The sampled token to decode next (the last of `produced`).
    next: Option<LlamaToken>,
    /// Where this request's logits are in the batch just decoded.
    logits: Option<i32>,
    picker: Picker,
    max_tokens: u64,
    out: Vec<u8>,
    produced: u64,
    truncated: bool,
    batched_with: u32,
}

fn tokenize(model: &LlamaModel, n_ctx: u32, job: &Job) -> Result<Vec<LlamaToken>, GenerateError> {
    let tokens = model.vocab().tokenize(job.prompt.as_bytes(), false, true);
    if tokens.is_empty() {
        return Err(GenerateError::Failed("empty prompt".into()));
    }
    if tokens.len() >= n_ctx as usize {
        return Err(GenerateError::ContextFull {
            tokens: tokens.len(),
            context: n_ctx,
        });
    }
    Ok(tokens)
}

/// Where a request starts: a free sequence, and another sequence whose cache to copy
/// there first when that one holds a longer start of the prompt (a new episode's system
/// and user prompt, which every episode of its variant shares).
struct Placement {
    slot: usize,
    copy_from: Option<usize>,
}

/// Copying a sequence moves its whole KV buffer (a few hundred MB for the default model
/// at 8192 tokens, tens of ms): worth it when it saves evaluating more than this.
const MIN_COPY: usize = 32;

/// `None` when the request must wait: every sequence is busy, or another request is
/// still evaluating the start of this prompt, which is then copied rather than evaluated
/// twice.
fn place(slots: &[Slot], active: &[Active], tokens: &[LlamaToken]) -> Option<Placement> {
    let free: Vec<usize> = (0..slots.len())
        .filter(|s| !active.iter().any(|a| a.slot == *s))
        .collect();
    let shared: Vec<usize> = slots
        .iter()
        .map(|s| common_prefix(&s.tokens, tokens))
        .collect();
    // Its own sequence (its episode's previous turn) saves most; one holding another
    // conversation loses that one's cache past the shared start. Ties: least recent.
    let slot = *free.iter().max_by_key(|s| {
        let lost = slots[**s].tokens.len() - shared[**s];
        (
            shared[**s] as i64 - lost as i64,
            std::cmp::Reverse(slots[**s].used),
        )
    })?;
    let own = shared[slot];
    let evaluating = active.iter().any(|a| {
        let share = common_prefix(&a.prompt, tokens);
        a.fed < share && share > own + MIN_COPY
    });
    if evaluating {
        return None;
    }
    let Some(donor) = (0..slots.len())
        .filter(|s| *s != slot && shared[*s] > own + MIN_COPY)
        .max_by_key(|s| shared[*s])
    else {
        return Some(Placement {
            slot,
            copy_from: None,
        });
    };
    // Copy into the free sequence cheapest to overwrite: an empty one, else the least
    // recently used (`slot` itself is one candidate: free, and not the donor).
    let target = free
        .iter()
        .copied()
        .filter(|s| *s != donor)
        .min_by_key(|s| (!slots[*s].tokens.is_empty(), slots[*s].used))
        .unwrap_or(slot);
    Some(Placement {
        slot: target,
        copy_from: Some(donor),
    })
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn start(
    model: &LlamaModel,
    ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
    (index, slot): (usize, &mut Slot),
    n_ctx: u32,
    job: Job,
    prompt: Vec<LlamaToken>,
    clock: u64,
) -> Result<Active, (Job, GenerateError)> {
    // Reuse the cached prefix; always evaluate at least the last prompt token.
    let keep = common_prefix(&slot.tokens, &prompt).min(prompt.len() - 1);
    if let Err(e) = ctx.clear_kv_cache_seq(Some(index as u32), Some(keep as u32), None) {
        return Err((job, GenerateError::Failed(e.to_string())));
    }
    slot.tokens.truncate(keep);
    slot.used = clock;
    let s = &job.sampling;
    let grammar = match s
        .grammar
        .as_ref()
        .map(|g| grammar_sampler(model, g))
        .transpose()
    {
        Ok(grammar) => grammar,
        Err(e) => return Err((job, e.into())),
    };
    let chain = if s.temperature <= 0.0 {
        LlamaSampler::greedy()
    } else {
        LlamaSampler::chain_simple([
            LlamaSampler::top_p(s.top_p, 1),
            LlamaSampler::temp(s.temperature),
            LlamaSampler::dist(s.seed),
        ])
    };
    // The reply may use what room is left, as hosted APIs cap output at the window.
    let room = n_ctx as usize - prompt.len();
    Ok(Active {
        max_tokens: (s.max_tokens as usize).min(room) as u64,
        slot: index,
        fed: keep,
        reused: keep,
        next: None,
        logits: None,
        picker: Picker { grammar, chain },
        out: Vec::new(),
        produced: 0,
        truncated: false,
        batched_with: 0,
        prompt,
        job,
    })
}

/// One step's batch: the next token of every reply being written, then as much of the
/// prompts being read as there is room for, in chunks of at most `BATCH`.
fn fill(batch: &mut LlamaBatch, active: &mut [Active], slots: &mut [Slot]) -> Result<(), String> {
    let mut stepping = vec![false; active.len()];
    for (a, stepping) in active.iter_mut().zip(&mut stepping) {
        let Some(token) = a.next.take() else { continue };
        *stepping = true;
        a.logits = Some(batch.n_tokens());
        // `next` is the last of the `produced` tokens that follow the prompt.
        let pos = a.prompt.len() + a.produced as usize - 1;
        batch
            .add(token, pos as i32, &[a.slot as i32], true)
            .map_err(|e| e.to_string())?;
        slots[a.slot].tokens.push(token);
    }
    for (a, stepping) in active.iter_mut().zip(&mut stepping) {
        let end = a
            .prompt
            .len()
            .min(a.fed + BATCH - batch.n_tokens() as usize);
        *stepping |= end > a.fed;
        for pos in a.fed..end {
            let last = pos == a.prompt.len() - 1;
            if last {
                a.logits = Some(batch.n_tokens());
            }
            batch
                .add(a.prompt[pos], pos as i32, &[a.slot as i32], last)
                .map_err(|e| e.to_string())?;
        }
        slots[a.slot]
            .tokens
            .extend_from_slice(&a.prompt[a.fed..end]);
        a.fed = end;
    }
    let others = stepping.iter().filter(|s| **s).count().saturating_sub(1) as u32;
    for (a, _) in active.iter_mut().zip(stepping).filter(|(_, s)| *s) {
        a.batched_with = a.batched_with.max(others);
    }
    Ok(())
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
