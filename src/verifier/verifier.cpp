// Verifier: input templates, heads over one backbone pass, batched scoring.
#include "stepverify/verifier.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <torch/torch.h>

#include "stepverify/errors.h"
#include "stepverify/session.h"
#include "stepverify/transformer.h"
#include "util/sequences.h"
#include "verifier/heads.h"
#include "verifier/verifier_internal.h"

namespace stepverify {
namespace {

VerifierSpec choose_spec(const std::filesystem::path& dir, const VerifierOptions& o, const ModelConfig& cfg) {
  if (o.spec_value) return *o.spec_value;
  if (!o.spec.empty()) {
    const auto names = VerifierSpec::preset_names();
    const bool is_preset = std::find(names.begin(), names.end(), o.spec) != names.end();
    // Neither a preset nor a file: the preset lookup's error lists the presets.
    if (is_preset || !std::filesystem::exists(o.spec)) return VerifierSpec::preset(o.spec);
    return VerifierSpec::from_file(o.spec);
  }
  if (std::filesystem::exists(dir / "stepverify.json")) return VerifierSpec::from_file(dir / "stepverify.json");
  return VerifierSpec::for_architecture(cfg);
}

// The reference LM of an implicit PRM: loaded with the verifier's options (no
// tokenizer: the verifier's is used), and checked to run in lockstep with it.
std::shared_ptr<const Model> load_reference(const std::filesystem::path& dir, const VerifierSpec& spec,
                                            const Model& model, LoadOptions options) {
  std::filesystem::path ref = spec.implicit.reference;
  if (ref.is_relative()) ref = dir / ref;
  if (!std::filesystem::exists(ref / "config.json"))
    throw IoError(ref.string() + ": no checkpoint here (spec '" + spec.name + "', field 'reference')");
  options.load_tokenizer = false;
  auto reference = Model::load(ref, options);
  const auto& a = model.config();
  const auto& b = reference->config();
  auto mismatch = [&](const char* field, const std::string& mine, const std::string& theirs) {
    throw ConfigError(ref.string() + ": the reference LM's " + field + " is " + theirs + ", the verifier's (" +
                      dir.string() + ") " + mine + "; an implicit PRM's two models must share it");
  };
  if (!model.has_lm_head() || !reference->has_lm_head())
    throw ConfigError(ref.string() + ": an implicit PRM needs two causal LMs (an LM head in " +
                      (model.has_lm_head() ? ref.string() : dir.string()) + " is missing)");
  if (a.vocab_size != b.vocab_size) mismatch("vocab_size", std::to_string(a.vocab_size), std::to_string(b.vocab_size));
  if (a.num_key_value_heads != b.num_key_value_heads)
    mismatch("num_key_value_heads", std::to_string(a.num_key_value_heads), std::to_string(b.num_key_value_heads));
  if (a.head_dim != b.head_dim) mismatch("head_dim", std::to_string(a.head_dim), std::to_string(b.head_dim));
  if (a.sliding_window != b.sliding_window)
    mismatch("sliding_window", a.sliding_window ? std::to_string(*a.sliding_window) : "none",
             b.sliding_window ? std::to_string(*b.sliding_window) : "none");
  if (b.max_position_embeddings < a.max_position_embeddings)
    mismatch("max_position_embeddings", std::to_string(a.max_position_embeddings),
             std::to_string(b.max_position_embeddings));
  return reference;
}

}  // namespace

Verifier::Verifier() : impl_(std::make_unique<Impl>()) {}
Verifier::~Verifier() = default;

std::shared_ptr<const Verifier> Verifier::load(const std::filesystem::path& dir, const VerifierOptions& options) {
  auto v = std::shared_ptr<Verifier>(new Verifier());
  auto& im = *v->impl_;
  const auto config = ModelConfig::from_file(dir / "config.json");
  im.spec_ = choose_spec(dir, options, config);
  auto ckpt = Checkpoint::open(dir);  // opened once: backbone and heads read it
  im.model_ = Model::load(dir, config, *ckpt, options.load);
  if (im.spec_.kind == VerifierKind::Implicit) im.reference_ = load_reference(dir, im.spec_, *im.model_, options.load);
  for (const auto& h : im.spec_.heads) {
    if (!options.heads.empty() && std::find(options.heads.begin(), options.heads.end(), h.name) == options.heads.end())
      continue;
    im.heads_.push_back(make_head(h, *ckpt, dir, *im.model_));
  }
  for (const auto& want : options.heads)
    if (std::none_of(im.heads_.begin(), im.heads_.end(), [&](const auto& h) { return h->spec().name == want; }))
      throw ConfigError("spec '" + im.spec_.name + "' has no head named '" + want + "'");
  // The tokenizer lives as long as the model.
  im.template_.emplace(im.spec_.input, std::shared_ptr<const Tokenizer>(im.model_, &im.model_->tokenizer()),
                       im.spec_.name);
  if (options.prefix_cache_bytes > 0)
    im.prefix_cache_ = std::make_unique<PrefixCache>(options.prefix_cache_bytes, im.bytes_per_token());
  return v;
}

std::vector<std::string> Verifier::head_names() const {
  std::vector<std::string> out;
  for (const auto& h : impl_->heads_) out.push_back(h->spec().name);
  return out;
}

bool Verifier::has_step_heads() const {
  for (size_t h = 0; h < impl_->num_heads(); ++h)
    if (!impl_->reads_last(h)) return true;
  return false;
}

const VerifierSpec& Verifier::spec() const { return impl_->spec_; }
const Model& Verifier::model() const { return *impl_->model_; }
const InputTemplate& Verifier::input_template() const { return *impl_->template_; }
PrefixCache* Verifier::prefix_cache() const { return impl_->prefix_cache_.get(); }
const HeadSpec& Verifier::head_spec(size_t head) const { return impl_->head_spec(head); }

std::vector<int64_t> Verifier::read_positions(size_t head, const RenderedInput& input) const {
  impl_->head_spec(head);  // names a head that does not exist
  return impl_->read_positions(head, input);
}

at::Tensor Verifier::head_inputs(size_t head, const at::Tensor& hidden, const RenderedInput& input,
                                 const std::vector<size_t>& which,
                                 const std::function<at::Tensor(const at::Tensor&)>& lm) const {
  impl_->head_spec(head);
  return impl_->head_inputs(head, hidden, 0, input, which, lm);
}

RenderedInput Verifier::tokenize(const std::string& question, const std::vector<std::string>& steps) const {
  auto r = impl_->render(question, steps, false);
  impl_->check_length(static_cast<int64_t>(r.ids.size()), "the input");
  return r;
}

std::vector<Scores> Verifier::score_tokenized(const std::vector<RenderedInput>& inputs,
                                              const ScoreOptions& options) const {
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].ids.empty()) throw InputError("input " + std::to_string(i) + " has no tokens");
    impl_->check_length(static_cast<int64_t>(inputs[i].ids.size()), "input " + std::to_string(i));
  }
  return impl_->score_rendered(inputs, options);
}

ForwardOutput Verifier::Impl::forward(const ForwardInput& in) const {
  if (!reference_) return model_->forward(in);
  c10::InferenceMode guard;
  try {
    return model_->transformer().forward(in, &reference_->transformer());
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Error(std::string("forward: libtorch error: ") + e.what_without_backtrace());
  }
}

KVCache Verifier::Impl::new_cache(int64_t batch) const {
  if (!reference_) return model_->new_cache(batch);
  c10::InferenceMode guard;
  ModelConfig both = model_->config();
  both.num_hidden_layers += reference_->config().num_hidden_layers;
  return KVCache(both, batch, model_->device(), model_->dtype());
}

int64_t Verifier::Impl::bytes_per_token() const {
  const auto& c = model_->config();
  const int64_t layers = c.num_hidden_layers + (reference_ ? reference_->config().num_hidden_layers : 0);
  return 2 * layers * c.num_key_value_heads * c.head_dim * static_cast<int64_t>(c10::elementSize(model_->dtype()));
}

bool Verifier::Impl::reads_last(size_t h) const { return heads_.at(h)->spec().read == ReadAt::Last; }

const HeadSpec& Verifier::Impl::head_spec(size_t h) const {
  if (h >= heads_.size())
    throw InputError("verifier: head " + std::to_string(h) + " does not exist (" + std::to_string(heads_.size()) +
                     " loaded)");
  return heads_[h]->spec();
}

void Verifier::Impl::check_length(int64_t tokens, const std::string& what) const {
  const int64_t limit = model_->config().max_position_embeddings;
  if (tokens > limit)
    throw InputError(what + ": " + std::to_string(tokens) + " tokens exceed the context of " + std::to_string(limit) +
                     " (max_position_embeddings)");
}

std::vector<int64_t> Verifier::Impl::read_positions(size_t h, const Rendered& r) const {
  const auto& read = heads_.at(h)->spec().read;
  if (read == ReadAt::Last) return {static_cast<int64_t>(r.ids.size()) - 1};
  if (read == ReadAt::StepEnd) return r.step_positions;
  std::vector<int64_t> pos = r.tag_positions;
  if (read == ReadAt::BeforeTag)
    for (auto& p : pos) p = std::max<int64_t>(0, p - 1);
  return pos;
}

bool Verifier::Impl::reads_logprobs(size_t h) const {
  const auto& spec = heads_.at(h)->spec();
  return spec.logprob_features() > 0 || spec.type == HeadType::Implicit;
}

std::vector<std::pair<int64_t, int64_t>> Verifier::Impl::read_spans(size_t h, const Rendered& r, bool step_only) const {
  std::vector<std::pair<int64_t, int64_t>> spans;
  const auto& ends = r.step_positions;
  const bool solution = !step_only && heads_.at(h)->spec().logprob_span != LogprobSpan::Step;
  auto span = [&](size_t k) { return std::make_pair(k == 0 || solution ? r.solution_from : ends[k - 1] + 1, ends[k]); };
  if (reads_last(h)) {
    if (!ends.empty()) spans.push_back(span(ends.size() - 1));
    return spans;
  }
  for (size_t k = 0; k < ends.size(); ++k) spans.push_back(span(k));
  return spans;
}

at::Tensor Verifier::Impl::token_logprobs(const at::Tensor& hidden, int64_t offset, const Rendered& r, int64_t first,
                                          int64_t last, const std::function<at::Tensor(const at::Tensor&)>& lm) const {
  if (first <= offset || last < first || last - offset > hidden.size(0) || last >= static_cast<int64_t>(r.ids.size()))
    throw Error("verifier: log-probabilities of tokens " + std::to_string(first) + ".." + std::to_string(last) +
                " need hidden states from " + std::to_string(first - 1) + " (have " + std::to_string(offset) + ".." +
                std::to_string(offset + hidden.size(0) - 1) + ")");
  // Row j predicts token offset + j + 1: tokens first..last come from rows first-1..last-1.
  const auto rows = hidden.narrow(0, first - 1 - offset, last - first + 1);
  auto next = torch::tensor(std::vector<int64_t>(r.ids.begin() + first, r.ids.begin() + last + 1), torch::kLong)
                  .to(hidden.device())
                  .unsqueeze(1);
  auto logprob = [&](const at::Tensor& logits) {
    return torch::log_softmax(logits.to(torch::kFloat), -1).gather(1, next.to(logits.device())).squeeze(1);
  };
  if (lm) return logprob(lm(rows));
  if (!reference_) return logprob(model_->logits(rows));
  // An implicit PRM: the hidden rows hold both models' states side by side.
  const int64_t H = model_->config().hidden_size;
  return logprob(model_->logits(rows.narrow(1, 0, H))) -
         logprob(reference_->logits(rows.narrow(1, H, rows.size(1) - H)));
}

at::Tensor Verifier::Impl::head_inputs(size_t h, const at::Tensor& hidden, int64_t offset, const Rendered& r,
                                       const std::vector<size_t>& which,
                                       const std::function<at::Tensor(const at::Tensor&)>& lm,
                                       const std::vector<float>* known) const {
  const auto pos = read_positions(h, r);
  std::vector<int64_t> rows;
  for (size_t i : which) rows.push_back(pos.at(i) - offset);
  auto x = hidden.index_select(0, torch::tensor(rows, torch::kLong).to(hidden.device()));
  if (!reads_logprobs(h)) return x;
  const bool implicit = heads_.at(h)->spec().type == HeadType::Implicit;
  const int64_t n_features = heads_.at(h)->spec().logprob_features();
  if (which.empty()) return torch::zeros({0, implicit ? 1 : x.size(1) + n_features}, x.options());
  if (r.solution_from < 1)
    throw Error("verifier: head '" + heads_.at(h)->spec().name +
                "' reads log-probabilities but the input has no solution start");
  const auto spans = read_spans(h, r);
  // The log-probabilities of every token the reads cover, computed once:
  // tokens `known` holds are taken from it, the others from the hidden rows.
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = -1;
  for (size_t i : which) {
    if (spans.at(i).second < spans.at(i).first)
      throw Error("verifier: head '" + heads_.at(h)->spec().name + "': read " + std::to_string(i) +
                  " covers no tokens");
    lo = std::min(lo, spans.at(i).first);
    hi = std::max(hi, spans.at(i).second);
  }
  const auto size = [](const std::vector<float>* k) { return k ? static_cast<int64_t>(k->size()) : 0; };
  int64_t from = lo;  // first token not in `known`
  while (from <= hi && from < size(known) && !std::isnan((*known)[static_cast<size_t>(from)])) ++from;
  std::vector<at::Tensor> parts;
  if (from > lo)
    parts.push_back(torch::tensor(std::vector<float>(known->begin() + lo, known->begin() + from), torch::kFloat)
                        .to(hidden.device()));
  if (from <= hi) {
    if (from <= offset)
      throw Error("verifier: head '" + heads_.at(h)->spec().name + "' needs the log-probability of token " +
                  std::to_string(from) + " (hidden states from " + std::to_string(offset) + ")");
    parts.push_back(token_logprobs(hidden, offset, r, from, hi, lm));
  }
  const auto lp = parts.size() == 1 ? parts[0] : torch::cat(parts);  // tokens lo..hi
  if (implicit) {
    // The step's reward: beta times the reduction of its tokens' log-ratios.
    const auto lr = lp.to(torch::kDouble).cpu().contiguous();
    const double* v = lr.data_ptr<double>();
    std::vector<double> rewards;
    for (size_t i : which) {
      const auto [first, last] = spans.at(i);
      double acc = spec_.implicit.reduction == TokenReduction::Min ? INFINITY : 0.0;
      for (int64_t t = first; t <= last; ++t)
        acc = spec_.implicit.reduction == TokenReduction::Min ? std::min(acc, v[t - lo]) : acc + v[t - lo];
      if (spec_.implicit.reduction == TokenReduction::Mean) acc /= static_cast<double>(last - first + 1);
      rewards.push_back(spec_.implicit.beta * acc);
    }
    return torch::tensor(rewards, torch::kDouble).view({-1, 1});
  }
  // A (min, mean) pair per span, the step's first when the head reads both;
  // both spans end at the step read, so the covering span holds the step's.
  const auto step_spans = n_features == 4 ? read_spans(h, r, true) : decltype(spans){};
  std::vector<at::Tensor> feats;
  for (size_t i : which) {
    std::vector<at::Tensor> pairs;
    auto add_pair = [&](int64_t first, int64_t last) {
      const auto t = lp.narrow(0, first - lo, last - first + 1);
      pairs.push_back(t.min());
      pairs.push_back(t.mean());
    };
    if (n_features == 4) add_pair(step_spans.at(i).first, spans.at(i).second);
    add_pair(spans.at(i).first, spans.at(i).second);
    feats.push_back(torch::stack(pairs));
  }
  return torch::cat({x.to(torch::kFloat), torch::stack(feats).to(x.device())}, 1).to(x.scalar_type());
}

std::vector<double> Verifier::Impl::head_scores(size_t h, const at::Tensor& rows) const {
  auto s = heads_.at(h)->scores(rows);
  return std::vector<double>(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
}

Scores Verifier::Impl::finish(std::map<std::string, std::vector<double>> per_head, int64_t tokens,
                              const ScoreOptions& options) const {
  Scores out;
  out.tokens = tokens;
  for (const auto& h : heads_) {
    const auto& name = h->spec().name;
    auto& v = per_head[name];
    if (h->spec().read == ReadAt::Last) {
      out.outcome[name] = v.empty() ? std::numeric_limits<double>::quiet_NaN() : v.back();
      continue;
    }
    out.outcome[name] = options.custom_aggregate ? options.custom_aggregate(v) : aggregate(v, options.aggregate);
    if (out.step_scores.empty()) out.step_scores = v;
    out.heads[name] = std::move(v);
  }
  return out;
}

Scores Verifier::score(const std::string& question, const std::vector<std::string>& steps,
                       const ScoreOptions& options) const {
  return score_batch({Solution{question, steps}}, options).at(0);
}

std::vector<Scores> Verifier::score_batch(const std::vector<Solution>& solutions, const ScoreOptions& options) const {
  std::vector<RenderedInput> rendered;
  rendered.reserve(solutions.size());
  for (size_t i = 0; i < solutions.size(); ++i) {
    try {
      rendered.push_back(tokenize(solutions[i].question, solutions[i].steps));
    } catch (const InputError& e) {
      if (solutions.size() == 1) throw;
      throw InputError("solution " + std::to_string(i) + ": " + e.what());
    }
  }
  return impl_->score_rendered(rendered, options);
}

std::vector<Scores> Verifier::Impl::score_rendered(const std::vector<Rendered>& rendered,
                                                   const ScoreOptions& options) const {
  std::vector<size_t> order(rendered.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return rendered[a].ids.size() > rendered[b].ids.size(); });
  std::vector<Scores> out(rendered.size());
  const int64_t pad = model_->tokenizer().special_tokens().pad_id.value_or(0);
  c10::InferenceMode guard;
  for (size_t start = 0; start < order.size();) {
    const int64_t maxlen = static_cast<int64_t>(rendered[order[start]].ids.size());
    size_t end = start + 1;
    while (end < order.size() && static_cast<int64_t>(end - start + 1) * maxlen <= options.max_batch_tokens) ++end;
    const int64_t B = static_cast<int64_t>(end - start);
    auto ids = torch::full({B, maxlen}, pad, torch::kLong);
    auto mask = torch::zeros({B, maxlen}, torch::kLong);
    for (int64_t b = 0; b < B; ++b) {
      const auto& r = rendered[order[start + b]];
      const int64_t n = static_cast<int64_t>(r.ids.size());
      ids[b].narrow(0, 0, n).copy_(torch::tensor(r.ids, torch::kLong));
      mask[b].narrow(0, 0, n).fill_(1);
    }
    ForwardInput in;
    in.input_ids = ids;
    in.attention_mask = mask;  // right padding: positions stay 0..T-1, as unpadded runs
    auto hidden = forward(in).hidden;
    for (int64_t b = 0; b < B; ++b) {
      const size_t idx = order[start + b];
      std::map<std::string, std::vector<double>> per_head;
      for (size_t h = 0; h < heads_.size(); ++h) {
        const auto all = detail::indices(read_positions(h, rendered[idx]).size());
        per_head[heads_[h]->spec().name] = head_scores(h, head_inputs(h, hidden[b], 0, rendered[idx], all));
      }
      out[idx] = finish(std::move(per_head), static_cast<int64_t>(rendered[idx].ids.size()), options);
    }
    start = end;
  }
  return out;
}

std::unique_ptr<ScoringSession> Verifier::session(const std::string& question) const {
  return std::make_unique<ScoringSession>(shared_from_this(), question);
}

}  // namespace stepverify
