// The optimisation loop, causal-LM training and checkpoint writing.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <numeric>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backbone/tensor_io.h"
#include "stepverify/checkpoint.h"
#include "stepverify/distributed.h"
#include "stepverify/errors.h"
#include "stepverify/runtime.h"
#include "stepverify/train/training.h"
#include "train/batching.h"
#include "util/files.h"

namespace stepverify {
namespace {

// Yields batches of indices over epochs of seeded permutations; with lengths,
// each window of 50 batches is sorted by length before it is cut, and the
// batches of an epoch are then shuffled.
class BatchOrder {
 public:
  BatchOrder(int64_t n, int64_t batch, uint64_t seed, const std::vector<int64_t>& lengths)
      : n_(n), batch_(batch), lengths_(lengths), state_(seed) {}
  std::vector<int64_t> next() {
    if (pos_ == batches_.size()) epoch();
    return batches_[pos_++];
  }

 private:
  void epoch() {
    std::vector<int64_t> order(static_cast<size_t>(n_));
    std::iota(order.begin(), order.end(), 0);
    shuffle(order);
    // Whole batches: the last one is completed with examples from this epoch's start.
    while (static_cast<int64_t>(order.size()) % batch_ != 0)
      order.push_back(order[order.size() % static_cast<size_t>(n_)]);
    if (!lengths_.empty()) {
      const size_t window = static_cast<size_t>(batch_) * 50;
      for (size_t w = 0; w < order.size(); w += window) {
        auto last = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), w + window));
        std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(w), last, [&](int64_t a, int64_t b) {
          return lengths_[static_cast<size_t>(a)] < lengths_[static_cast<size_t>(b)];
        });
      }
    }
    batches_.clear();
    for (size_t i = 0; i < order.size(); i += static_cast<size_t>(batch_))
      batches_.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(i),
                            order.begin() + static_cast<std::ptrdiff_t>(i) + batch_);
    if (!lengths_.empty()) shuffle(batches_);
    pos_ = 0;
  }
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[detail::splitmix64(state_) % i]);
  }
  int64_t n_, batch_;
  std::vector<int64_t> lengths_;
  std::vector<std::vector<int64_t>> batches_;
  size_t pos_ = 0;
  uint64_t state_;
};

double schedule(const TrainOptions& o, int64_t step) {
  if (step < o.warmup_steps)
    return o.learning_rate * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  const double p =
      static_cast<double>(step - o.warmup_steps) / static_cast<double>(std::max<int64_t>(1, o.steps - o.warmup_steps));
  return o.learning_rate * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + std::cos(M_PI * std::min(1.0, p))));
}

// Logits of a transformer whose LM head may be tied to the embeddings (the
// tie is taken from the config, so one parameter gets both gradients).
at::Tensor lm_logits(TransformerImpl& m, const at::Tensor& hidden) {
  const auto& w = m.config().tie_word_embeddings ? m.model->embed_tokens->weight : m.lm_head->weight;
  return at::linear(hidden, w);
}

using LossFn = std::function<at::Tensor(const std::vector<int64_t>&)>;

// One micro-batch: returns its mean loss over `accumulation` and adds its
// gradients, scaled the same way, to the parameters' .grad. With shards > 1
// the batch is split into contiguous parts whose losses and gradients are
// computed concurrently; each weighs by its share of the examples, and the
// gradients are summed in shard order (the same bits whichever thread ends first).
// With a group of W ranks, this rank takes the contiguous slice r of W of
// the micro-batch (the others' slices are theirs), and the shares are of the
// whole micro-batch, so that the ranks' sums add up to its mean.
double micro_batch(const std::vector<at::Tensor>& params, const std::vector<int64_t>& whole, const LossFn& loss,
                   int shards, int accumulation, int64_t step, int rank, int world) {
  auto not_finite = [&] {
    return Error(fmt::format("training: the loss is not finite at step {} (lower the learning rate)", step));
  };
  const size_t total = whole.size();
  const size_t lo = total * static_cast<size_t>(rank) / static_cast<size_t>(world),
               hi = total * static_cast<size_t>(rank + 1) / static_cast<size_t>(world);
  const std::vector<int64_t> batch(whole.begin() + static_cast<std::ptrdiff_t>(lo),
                                   whole.begin() + static_cast<std::ptrdiff_t>(hi));
  const size_t n = batch.size();
  if (n == 0) return 0;  // more ranks than examples: this one adds nothing
  const double slice = static_cast<double>(n) / static_cast<double>(total);
  const size_t S = std::min(static_cast<size_t>(std::max(shards, 1)), n);
  if (S <= 1) {
    auto l = loss(batch);
    const double v = l.item<double>();
    if (!std::isfinite(v)) throw not_finite();
    // (One process: exactly the division it always made.)
    (world == 1 ? l / accumulation : l * (slice / accumulation)).backward();
    return world == 1 ? v / accumulation : v * slice / accumulation;
  }
  std::vector<std::vector<at::Tensor>> grads(S);
  std::vector<double> values(S, 0);
  std::vector<std::exception_ptr> errors(S);
  auto run = [&](size_t k) {
    try {
      const size_t from = n * k / S, to = n * (k + 1) / S;
      const std::vector<int64_t> part(batch.begin() + static_cast<std::ptrdiff_t>(from),
                                      batch.begin() + static_cast<std::ptrdiff_t>(to));
      const double share = static_cast<double>(to - from) / static_cast<double>(total);
      auto l = loss(part);
      values[k] = l.item<double>() * share;
      if (!std::isfinite(values[k])) return;
      grads[k] = torch::autograd::grad({l * (share / accumulation)}, params, {}, /*retain_graph=*/false,
                                       /*create_graph=*/false, /*allow_unused=*/true);
    } catch (...) {
      errors[k] = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  for (size_t k = 1; k < S; ++k) workers.emplace_back(run, k);
  run(0);
  for (auto& w : workers) w.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  double sum = 0;
  for (double v : values) sum += v;
  if (!std::isfinite(sum)) throw not_finite();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor g;
    for (size_t k = 0; k < S; ++k)
      if (grads[k][i].defined()) g = g.defined() ? g + grads[k][i] : grads[k][i];
    if (!g.defined()) continue;
    auto& into = params[i].mutable_grad();
    if (into.defined())
      into.add_(g);
    else
      into = g;
  }
  return sum / accumulation;
}

// Sums the parameters' gradients and `loss` over the group's ranks. A
// gradient no rank computed stays undefined (the optimizer skips it, as one
// process would).
void allreduce_gradients(ProcessGroup& group, const std::vector<at::Tensor>& params, double& loss) {
  torch::NoGradGuard no_grad;
  std::vector<float> flat;
  std::vector<double> meta(params.size() + 1, 0.0);  // per parameter: 1 when this rank has its gradient; then the loss
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& g = params[i].grad();
    if (g.defined()) meta[i] = 1;
    const auto f = (g.defined() ? g : torch::zeros_like(params[i])).to(torch::kFloat).contiguous();
    flat.insert(flat.end(), f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
  }
  meta.back() = loss;
  group.allreduce_sum(flat.data(), flat.size());
  group.allreduce_sum(meta.data(), meta.size());
  loss = meta.back();
  size_t at = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const int64_t k = params[i].numel();
    if (meta[i] > 0) {
      auto g = torch::from_blob(flat.data() + at, params[i].sizes(), torch::kFloat).to(params[i].scalar_type()).clone();
      params[i].mutable_grad() = g;
    }
    at += static_cast<size_t>(k);
  }
}

}  // namespace

TrainReport train_loop(const std::vector<at::Tensor>& parameters, int64_t num_examples,
                       const std::function<at::Tensor(const std::vector<int64_t>&)>& loss,
                       const std::function<double()>& eval, const TrainOptions& o,
                       const std::vector<int64_t>& lengths) {
  if (num_examples < 1) throw InputError("training: no examples");
  if (o.steps < 1 || o.batch_size < 1 || o.accumulation < 1 || o.learning_rate <= 0 || o.warmup_steps < 0)
    throw ConfigError("training: steps, batch_size, accumulation and learning_rate must be positive");
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& p : parameters) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto opts = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(o.learning_rate).betas({o.beta1, o.beta2}).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decay.empty()) groups.emplace_back(decay, opts(o.weight_decay));
  if (!no_decay.empty()) groups.emplace_back(no_decay, opts(0.0));
  if (groups.empty()) throw ConfigError("training: no trainable parameters");
  torch::optim::AdamW opt(groups, torch::optim::AdamWOptions(o.learning_rate));

  if (!lengths.empty() && static_cast<int64_t>(lengths.size()) != num_examples)
    throw InputError("training: lengths must give one length per example");
  BatchOrder order(num_examples, o.batch_size, o.seed, o.group_by_length ? lengths : std::vector<int64_t>{});
  const unsigned hw = std::thread::hardware_concurrency();
  const int shards = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, hw));
  const BlasThreadsScope one_blas_thread_per_shard(shards > 1 ? 1 : 0);
  const int world = o.group ? o.group->world_size() : 1, rank = o.group ? o.group->rank() : 0;
  TrainReport rep;
  const auto t0 = std::chrono::steady_clock::now();
  auto last_print = t0;
  const bool tty = ::isatty(2);
  double window = 0, tail = 0;
  int64_t window_n = 0, tail_n = 0;
  const int64_t tail_from = o.steps - std::max<int64_t>(1, o.steps / 10);
  for (int64_t step = 0; step < o.steps; ++step) {
    const double lr = schedule(o, step);
    for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    opt.zero_grad();
    double step_loss = 0;
    for (int a = 0; a < o.accumulation; ++a) {
      const auto batch = order.next();
      step_loss += micro_batch(parameters, batch, loss, shards, o.accumulation, step, rank, world);
      rep.examples += static_cast<int64_t>(batch.size());
    }
    if (o.group) allreduce_gradients(*o.group, parameters, step_loss);
    if (o.clip_grad_norm > 0) torch::nn::utils::clip_grad_norm_(parameters, o.clip_grad_norm);
    opt.step();
    if (step == 0) rep.first_loss = step_loss;
    window += step_loss;
    ++window_n;
    if (step >= tail_from) {
      tail += step_loss;
      ++tail_n;
    }
    const bool last = step + 1 == o.steps;
    const bool do_eval = eval && (last || (o.eval_every > 0 && (step + 1) % o.eval_every == 0));
    if (do_eval || last) {
      TrainPoint pt{step + 1, window / window_n, NAN, lr};
      if (do_eval) {
        torch::NoGradGuard ng;
        pt.eval_loss = eval();
      }
      rep.history.push_back(pt);
      window = 0;
      window_n = 0;
    }
    const auto now = std::chrono::steady_clock::now();
    const double secs = std::chrono::duration<double>(now - t0).count();
    if (o.progress && rank == 0 &&
        (last || do_eval || std::chrono::duration<double>(now - last_print).count() > (tty ? 0.5 : 30.0))) {
      last_print = now;
      const int width = 24;
      const int filled = static_cast<int>(width * (step + 1) / o.steps);
      std::string bar = std::string(filled, '#') + std::string(width - filled, '.');
      std::string eval_txt = rep.history.empty() || std::isnan(rep.history.back().eval_loss) || !do_eval
                                 ? ""
                                 : fmt::format(" eval {:.4f}", rep.history.back().eval_loss);
      std::cerr << fmt::format("{}[{}] step {}/{} loss {:.4f}{} lr {:.2e} {:.1f} steps/s", tty ? "\r" : "", bar,
                               step + 1, o.steps, step_loss, eval_txt, lr, (step + 1) / std::max(secs, 1e-9))
                << (tty && !last ? "" : "\n") << std::flush;
    }
  }
  rep.final_loss = tail / std::max<int64_t>(1, tail_n);
  if (!rep.history.empty()) rep.final_eval_loss = rep.history.back().eval_loss;
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

std::shared_ptr<TransformerImpl> new_transformer(const ModelConfig& config, uint64_t seed, bool with_lm_head) {
  auto t = std::make_shared<TransformerImpl>(config, with_lm_head, c10::kCPU);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard ng;
  for (auto& item_ : t->named_parameters()) {
    const std::string& name = item_.key();
    auto& p = item_.value();
    if (name.find("norm") != std::string::npos)
      p.fill_(1.0);
    else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0)
      p.zero_();
    else
      p.normal_(0.0, 0.02, gen);
  }
  if (config.tie_word_embeddings) t->tie_lm_head();
  return t;
}

std::shared_ptr<TransformerImpl> trainable_copy(const Model& model, bool with_lm_head, c10::ScalarType dtype) {
  const auto& cfg = model.config();
  auto t = std::make_shared<TransformerImpl>(cfg, with_lm_head && model.has_lm_head(), c10::kCPU);
  auto src = model.transformer().named_parameters();
  torch::NoGradGuard ng;
  for (auto& item_ : t->named_parameters()) {
    const std::string& name = item_.key();
    auto& p = item_.value();
    if (cfg.tie_word_embeddings && name == "lm_head.weight") continue;
    const auto* s = src.find(name);
    if (!s) throw ShapeError("trainable_copy: the loaded model has no parameter " + name);
    // A fresh tensor of the wanted dtype (the module's float32 one, never
    // written, is never resident), filled from the loaded weights.
    p.set_data(torch::empty(p.sizes(), torch::dtype(dtype)));
    p.copy_(s->detach().to(c10::kCPU));
  }
  if (cfg.tie_word_embeddings) t->tie_lm_head();
  return t;
}

TrainReport train_causal_lm(TransformerImpl& model, const std::vector<LmExample>& train,
                            const std::vector<LmExample>& eval, const TrainOptions& options) {
  if (!model.has_lm_head()) throw ConfigError("train_causal_lm: the model has no LM head");
  const int64_t ctx = model.config().max_position_embeddings;
  for (const auto* set : {&train, &eval})
    for (size_t i = 0; i < set->size(); ++i) {
      const auto& e = (*set)[i];
      if (e.ids.size() < 2 || static_cast<int64_t>(e.ids.size()) > ctx || e.prompt_tokens < 0 ||
          e.prompt_tokens >= static_cast<int64_t>(e.ids.size()))
        throw InputError(fmt::format("train_causal_lm: {} example {} has {} tokens and prompt {} (context {})",
                                     set == &train ? "training" : "evaluation", i, e.ids.size(), e.prompt_tokens, ctx));
    }
  model.train();
  auto batch_loss = [&](const std::vector<LmExample>& set, const std::vector<int64_t>& idx) {
    auto [ids, mask] = detail::pad_right(
        idx, [&](int64_t i) -> const std::vector<int64_t>& { return set[static_cast<size_t>(i)].ids; });
    const int64_t B = ids.size(0), T = ids.size(1);
    auto weight = torch::zeros({B, T - 1}, torch::kFloat);  // which predictions count
    for (int64_t b = 0; b < B; ++b) {
      const auto& e = set[static_cast<size_t>(idx[static_cast<size_t>(b)])];
      const int64_t n = static_cast<int64_t>(e.ids.size());
      const int64_t from = std::max<int64_t>(0, e.prompt_tokens - 1);
      weight[b].narrow(0, from, n - 1 - from).fill_(1);
    }
    ForwardInput in;
    in.input_ids = ids;
    in.attention_mask = mask;
    auto h = model.forward(in).hidden.narrow(1, 0, T - 1);
    auto logits = lm_logits(model, h).reshape({B * (T - 1), -1});
    auto ce =
        torch::nn::functional::cross_entropy(logits, ids.narrow(1, 1, T - 1).reshape({-1}),
                                             torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    auto w = weight.reshape({-1});
    return (ce * w).sum() / w.sum().clamp_min(1);
  };
  std::vector<at::Tensor> params;
  for (auto& item : model.named_parameters())
    if (!(model.config().tie_word_embeddings && item.key() == "lm_head.weight")) params.push_back(item.value());
  std::function<double()> ev;
  if (!eval.empty())
    ev = [&] {
      return detail::mean_loss(eval.size(), options.batch_size,
                               [&](const std::vector<int64_t>& idx) { return batch_loss(eval, idx); });
    };
  std::vector<int64_t> lengths;
  for (const auto& e : train) lengths.push_back(static_cast<int64_t>(e.ids.size()));
  auto rep = train_loop(
      params, static_cast<int64_t>(train.size()),
      [&](const std::vector<int64_t>& idx) { return batch_loss(train, idx); }, ev, options, lengths);
  model.eval();
  return rep;
}

std::string config_to_json(const ModelConfig& c) {
  nlohmann::ordered_json j;
  j["architectures"] = {c.architecture};
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  if (c.head_dim && c.head_dim != c.hidden_size / c.num_attention_heads) j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_theta"] = c.rope_theta;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["hidden_act"] = c.hidden_act;
  if (c.model_type == "llama") {
    j["attention_bias"] = c.qkv_bias;
    j["mlp_bias"] = c.mlp_bias;
  }
  if (c.sliding_window)
    j["sliding_window"] = *c.sliding_window;
  else if (c.model_type != "llama")
    j["sliding_window"] = nullptr;  // absent would read as the family default
  if (c.rope_scaling) {
    const auto& r = *c.rope_scaling;
    j["rope_scaling"] = {{"rope_type", r.type}, {"type", r.type}, {"factor", r.factor}};
    if (r.type == "llama3") {
      j["rope_scaling"]["low_freq_factor"] = r.low_freq_factor;
      j["rope_scaling"]["high_freq_factor"] = r.high_freq_factor;
      j["rope_scaling"]["original_max_position_embeddings"] = r.original_max_position_embeddings;
    }
  }
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_ids.size() == 1)
    j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty())
    j["eos_token_id"] = c.eos_token_ids;
  if (c.pad_token_id) j["pad_token_id"] = *c.pad_token_id;
  if (c.head != HeadKind::CausalLM) j["num_labels"] = c.num_labels;
  j["torch_dtype"] = "float32";
  return j.dump(2) + "\n";
}

void save_checkpoint(const std::filesystem::path& dir, TransformerImpl& model,
                     const std::filesystem::path& tokenizer_dir, const std::map<std::string, at::Tensor>& extra) {
  std::filesystem::create_directories(dir);
  detail::write_file_atomic(dir / "config.json", config_to_json(model.config()));
  std::vector<at::Tensor> keep;  // owns the CPU copies while writing
  std::vector<TensorData> tensors;
  auto add = [&](const std::string& name, const at::Tensor& t) {
    auto dtype = stepverify_dtype(t.scalar_type());
    if (!dtype || (*dtype != DType::F32 && *dtype != DType::BF16 && *dtype != DType::F16)) dtype = DType::F32;
    keep.push_back(t.detach().to(c10::kCPU, torch_dtype(*dtype)).contiguous());
    tensors.push_back({name, *dtype, keep.back().sizes().vec(), keep.back().data_ptr()});
  };
  for (const auto& item : model.named_parameters())
    if (!(model.config().tie_word_embeddings && item.key() == "lm_head.weight")) add(item.key(), item.value());
  for (const auto& [name, t] : extra) add(name, t);
  save_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  std::error_code ec;
  if (!tokenizer_dir.empty() && !std::filesystem::equivalent(tokenizer_dir, dir, ec))
    for (const char* f : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                          "vocab.json", "merges.txt"})
      if (std::filesystem::exists(tokenizer_dir / f)) detail::copy_file_atomic(tokenizer_dir / f, dir / f);
}

}  // namespace stepverify
