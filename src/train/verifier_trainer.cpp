// VerifierTrainer: linear heads (and the last layers) over a backbone, with
// the PRM, ORM, OVM and SORM losses at the positions the verifier reads.

#include <chrono>

#include <fmt/format.h>

#include "stepverify/distributed.h"
#include "stepverify/errors.h"
#include "stepverify/train/training.h"
#include "train/batching.h"
#include "util/files.h"
#include "util/sequences.h"

namespace stepverify {

namespace {

int64_t head_classes(const HeadSpec& h) { return h.activation == Activation::Softmax ? 2 : 1; }

// Per head of one example: read positions and their targets.
struct Prepared {
  RenderedInput rendered;                       // ids, step ends (log-probability features)
  std::vector<std::vector<int64_t>> positions;  // per head
  std::vector<std::vector<double>> targets;     // per head
  int64_t solution_from = 0;                    // first token after the question
  bool lm = false;                              // the solution takes the next-token loss
};

}  // namespace

VerifierTrainer::VerifierTrainer(const std::filesystem::path& backbone_dir, VerifierSpec spec,
                                 const std::filesystem::path& out_dir, uint64_t seed, c10::ScalarType dtype,
                                 ProcessGroup* group)
    : out_dir_(out_dir), spec_(std::move(spec)), group_(group) {
  if (spec_.heads.empty()) throw ConfigError("VerifierTrainer: the spec has no heads");
  for (const auto& h : spec_.heads) {
    if (h.type != HeadType::Linear)
      throw ConfigError(fmt::format("VerifierTrainer: head '{}' has type '{}'; only linear heads are trained", h.name,
                                    to_string(h.type)));
    if (h.activation == Activation::Softmax && h.class_index != 1 && h.class_index != 0)
      throw ConfigError(fmt::format("VerifierTrainer: softmax head '{}' must report class 0 or 1 of 2", h.name));
    if (!h.file.empty())
      throw ConfigError(
          fmt::format("VerifierTrainer: head '{}' names a separate file; trained heads live in the "
                      "checkpoint",
                      h.name));
  }
  detail::check_output_dir(out_dir_, {backbone_dir});
  LoadOptions lo;
  lo.dtype = dtype;
  auto base = Model::load(backbone_dir, lo);
  backbone_ = trainable_copy(*base, /*with_lm_head=*/true, dtype);
  base.reset();
  const int64_t H = backbone_->config().hidden_size;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::map<std::string, at::Tensor> extra;
  for (const auto& h : spec_.heads) {
    const int64_t C = head_classes(h);
    const int64_t inputs = H + h.logprob_features();  // + min and mean log-probability per span
    auto w = torch::empty({C, inputs}).normal_(0.0, 0.02, gen);
    auto b = torch::zeros({C});
    heads_[h.name] = {w, b};
    extra[h.weights + ".weight"] = w;
    extra[h.weights + ".bias"] = b;
  }
  // The other ranks read what rank 0 wrote (out_dir must be on a filesystem
  // they share): a token rank 0 writes beside it proves they see this run's.
  std::string token;
  if (!group_ || group_->is_root()) {
    save_checkpoint(out_dir_, *backbone_, backbone_dir, extra);
    detail::write_file_atomic(out_dir_ / "stepverify.json", spec_.to_json() + "\n");
    if (group_) {
      token = std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "-" + std::to_string(seed);
      detail::write_file_atomic(out_dir_ / ".stepverify_run", token);
    }
  }
  if (group_) {
    token = group_->allgather(token).at(0);  // after rank 0 wrote it
    std::string seen;
    try {
      seen = detail::read_file(out_dir_ / ".stepverify_run");
    } catch (const Error&) {}
    if (seen != token)
      throw ConfigError(fmt::format(
          "VerifierTrainer: rank {} does not see the checkpoint rank 0 wrote in {}; data-parallel training needs "
          "the output directory on a filesystem every rank shares",
          group_->rank(), out_dir_.string()));
  }
  VerifierOptions vo;
  vo.prefix_cache_bytes = 0;
  vo.load.dtype = dtype;  // the saved weights used in place
  renderer_ = Verifier::load(out_dir_, vo);
  for (auto& [name, wb] : heads_) {
    wb.first.set_requires_grad(true);
    wb.second.set_requires_grad(true);
  }
}

VerifierTrainer::~VerifierTrainer() = default;

TrainReport VerifierTrainer::train(const std::vector<VerifierExample>& train, const std::vector<VerifierExample>& eval,
                                   const VerifierTrainOptions& options) {
  const Verifier& v = *renderer_;
  const size_t n_heads = v.head_names().size();
  auto prepare = [&](const std::vector<VerifierExample>& set, const char* what) {
    std::vector<Prepared> out;
    out.reserve(set.size());
    for (size_t i = 0; i < set.size(); ++i) {
      const auto& e = set[i];
      try {
        Prepared p;
        auto r = renderer_->tokenize(e.question, e.steps);
        if (options.lm_weight > 0 && e.outcome && *e.outcome >= 1.0) {
          p.lm = true;
          p.solution_from = r.solution_from >= 0
                                ? r.solution_from
                                : static_cast<int64_t>(v.input_template().render(e.question, {}, true).ids.size());
        }
        for (size_t h = 0; h < n_heads; ++h) {
          const auto& hs = v.head_spec(h);
          auto pos = v.read_positions(h, r);
          std::vector<double> tgt;
          if (hs.meaning == HeadMeaning::Prm || hs.meaning == HeadMeaning::Sorm) {
            const auto& labels =
                hs.meaning == HeadMeaning::Sorm && !e.sorm_labels.empty() ? e.sorm_labels : e.step_labels;
            if (!labels.empty()) {
              if (labels.size() != e.steps.size() || pos.size() != labels.size())
                throw InputError(fmt::format("{} labels for {} steps", labels.size(), e.steps.size()));
              tgt = labels;
            }
          } else if (e.outcome) {
            tgt.assign(pos.size(), *e.outcome);
          }
          for (double t : tgt)
            if (!(t >= 0 && t <= 1))
              throw InputError(fmt::format("head '{}': a target of {} outside [0, 1]", hs.name, t));
          if (tgt.empty()) pos.clear();
          p.positions.push_back(std::move(pos));
          p.targets.push_back(std::move(tgt));
        }
        p.rendered = std::move(r);
        out.push_back(std::move(p));
      } catch (const InputError& err) {
        throw InputError(fmt::format("verifier training: {} example {}: {}", what, i, err.what()));
      }
    }
    return out;
  };
  const auto train_set = prepare(train, "training");
  const auto eval_set = prepare(eval, "evaluation");

  // What is trained.
  const auto& cfg = backbone_->config();
  const int64_t N = cfg.num_hidden_layers;
  std::vector<at::Tensor> params;
  for (auto& item_ : backbone_->named_parameters()) {
    const std::string& name = item_.key();
    auto& p = item_.value();
    if (cfg.tie_word_embeddings && name == "lm_head.weight") continue;
    bool on = options.last_layers < 0;
    if (options.last_layers > 0) {
      if (name.rfind("model.norm.", 0) == 0) on = true;
      for (int64_t l = std::max<int64_t>(0, N - options.last_layers); l < N; ++l)
        if (name.rfind(fmt::format("model.layers.{}.", l), 0) == 0) on = true;
    }
    p.set_requires_grad(on);
    if (on) params.push_back(p);
  }
  for (auto& [name, wb] : heads_) {
    params.push_back(wb.first);
    params.push_back(wb.second);
  }

  auto batch_loss = [&](const std::vector<Prepared>& set, const std::vector<int64_t>& idx) {
    auto [ids, mask] = detail::pad_right(
        idx, [&](int64_t i) -> const std::vector<int64_t>& { return set[static_cast<size_t>(i)].rendered.ids; });
    const int64_t B = ids.size(0), T = ids.size(1);
    ForwardInput in;
    in.input_ids = ids;
    in.attention_mask = mask;
    auto hidden3 = backbone_->forward(in).hidden;
    auto hidden = hidden3.reshape({B * T, -1});
    const auto lm = [&](const at::Tensor& rows) { return backbone_->logits(rows); };
    at::Tensor total = torch::zeros({});
    for (size_t h = 0; h < n_heads; ++h) {
      const auto& hs = v.head_spec(h);
      std::vector<int64_t> rows;
      std::vector<double> tgt;
      std::vector<at::Tensor> inputs;  // heads with log-probability features
      for (int64_t b = 0; b < B; ++b) {
        const auto& p = set[static_cast<size_t>(idx[static_cast<size_t>(b)])];
        for (size_t k = 0; k < p.positions[h].size(); ++k) {
          rows.push_back(b * T + p.positions[h][k]);
          tgt.push_back(p.targets[h][k]);
        }
        if (hs.logprob_features() > 0 && !p.positions[h].empty())
          inputs.push_back(v.head_inputs(h, hidden3[b], p.rendered, detail::indices(p.positions[h].size()), lm));
      }
      if (rows.empty()) continue;
      const auto& [w, bias] = heads_.at(hs.name);
      auto x = inputs.empty() ? hidden.index_select(0, torch::tensor(rows, torch::kLong)) : torch::cat(inputs, 0);
      auto out = at::linear(x.to(torch::kFloat), w, bias);  // [R, C], float32 heads
      auto y = torch::tensor(tgt, torch::kFloat);
      at::Tensor l;
      if (hs.activation == Activation::Softmax) {
        auto logp = torch::log_softmax(out, -1);
        const int64_t k = hs.class_index;
        l = -(y * logp.select(1, k) + (1 - y) * logp.select(1, 1 - k)).mean();
      } else if (hs.activation == Activation::Sigmoid) {
        l = torch::binary_cross_entropy_with_logits(out.select(1, 0), y);
      } else if (hs.activation == Activation::Tanh) {
        l = torch::mse_loss(torch::tanh(out.select(1, 0)), 2 * y - 1);
      } else {
        l = torch::mse_loss(out.select(1, 0), y);
      }
      const auto wt = options.head_weights.find(hs.name);
      total = total + l * (wt == options.head_weights.end() ? 1.0 : wt->second);
    }
    if (options.lm_weight > 0) {
      // Next-token loss on the solution tokens of correct solutions.
      auto weight = torch::zeros({B, T - 1}, torch::kFloat);
      for (int64_t b = 0; b < B; ++b) {
        const auto& p = set[static_cast<size_t>(idx[static_cast<size_t>(b)])];
        const int64_t n = static_cast<int64_t>(p.rendered.ids.size()), from = std::max<int64_t>(0, p.solution_from - 1);
        if (p.lm && n - 1 > from) weight[b].narrow(0, from, n - 1 - from).fill_(1);
      }
      if (weight.sum().item<double>() > 0) {
        auto logits = backbone_->logits(hidden3.narrow(1, 0, T - 1)).reshape({B * (T - 1), -1});
        auto ce = torch::nn::functional::cross_entropy(
            logits, ids.narrow(1, 1, T - 1).reshape({-1}),
            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
        auto w = weight.reshape({-1});
        total = total + options.lm_weight * (ce * w).sum() / w.sum();
      }
    }
    if (!total.requires_grad()) {
      // No example of the batch has a target for any head: a zero loss that
      // still reaches the parameters, so backward() is well defined.
      for (const auto& [name, wb] : heads_) total = total + 0.0 * wb.first.sum();
    }
    return total;
  };
  std::function<double()> ev;
  if (!eval_set.empty())
    ev = [&] {
      return detail::mean_loss(eval_set.size(), options.train.batch_size,
                               [&](const std::vector<int64_t>& idx) { return batch_loss(eval_set, idx); });
    };
  backbone_->train();
  std::vector<int64_t> lengths;
  for (const auto& p : train_set) lengths.push_back(static_cast<int64_t>(p.rendered.ids.size()));
  auto rep = train_loop(
      params, static_cast<int64_t>(train_set.size()),
      [&](const std::vector<int64_t>& idx) { return batch_loss(train_set, idx); }, ev, options.train, lengths);
  backbone_->eval();
  return rep;
}

void VerifierTrainer::save() const {
  std::map<std::string, at::Tensor> extra;
  for (const auto& h : spec_.heads) {
    const auto& [w, b] = heads_.at(h.name);
    extra[h.weights + ".weight"] = w;
    extra[h.weights + ".bias"] = b;
  }
  if (!group_ || group_->is_root()) {
    save_checkpoint(out_dir_, *backbone_, out_dir_, extra);
    std::error_code ec;
    std::filesystem::remove(out_dir_ / ".stepverify_run", ec);
  }
  if (group_) group_->barrier();
}

}  // namespace stepverify
