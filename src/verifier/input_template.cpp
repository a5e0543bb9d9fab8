// InputTemplate: a verifier's input, (question, steps) -> ids and read positions.
#include "stepverify/input_template.h"

#include <algorithm>
#include <cctype>

#include "stepverify/errors.h"
#include "util/sequences.h"

namespace stepverify {
namespace {

using detail::join;

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == '\n') {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

}  // namespace

InputTemplate::InputTemplate(TemplateSpec spec, std::shared_ptr<const Tokenizer> tokenizer, std::string name)
    : spec_(std::move(spec)), tokenizer_(std::move(tokenizer)), name_(std::move(name)) {
  if (!tokenizer_) throw ConfigError("spec '" + name_ + "': the input template needs a tokenizer");
  EncodeOptions raw;
  raw.add_special_tokens = false;
  if (!spec_.step_tag.empty()) {
    // The tag must be one token of this tokenizer, or its positions mean nothing.
    auto ids = tokenizer_->encode(spec_.step_tag, raw);
    if (ids.size() != 1)
      throw ConfigError("spec '" + name_ + "': step tag '" + spec_.step_tag +
                        "' is not a token of this tokenizer (it encodes to " + std::to_string(ids.size()) + " tokens)");
    tag_id_ = ids.back();
  }
  auto nl = tokenizer_->encode(spec_.step_separator, raw);
  if (!nl.empty()) newline_id_ = nl.back();
}

RenderedInput InputTemplate::render(const std::string& question, const std::vector<std::string>& steps,
                                    bool partial) const {
  const auto& in = spec_;
  const auto& tok = *tokenizer_;
  if (!partial && steps.empty()) throw InputError("the step list is empty");
  for (size_t i = 0; i < steps.size(); ++i) {
    if (detail::is_blank(steps[i])) throw InputError("step " + std::to_string(i) + " is empty");
    if (!in.step_tag.empty() && steps[i].find(in.step_tag) != std::string::npos)
      throw InputError("step " + std::to_string(i) + " contains the step tag '" + in.step_tag + "'");
    if (in.style == TemplateStyle::Tokens && in.steps_in_one_string &&
        steps[i].find(in.step_separator) != std::string::npos)
      throw InputError("step " + std::to_string(i) + " contains the step separator");
  }
  RenderedInput r;
  EncodeOptions raw;
  raw.add_special_tokens = false;
  EncodeOptions with_special;
  const std::string q = in.question_prefix + question + in.question_suffix;
  if (in.style == TemplateStyle::ChatML) {
    std::string text;
    if (!in.system.empty()) text += "<|im_start|>system\n" + in.system + "<|im_end|>\n";
    text += "<|im_start|>user\n" + q + "<|im_end|>\n<|im_start|>assistant\n";
    if (!steps.empty()) text += join(steps, in.step_tag) + in.step_tag;
    if (!partial) text += "<|im_end|>\n";
    r.ids = tok.encode(text, in.bos == BosPolicy::No ? raw : with_special);
  } else if (in.style == TemplateStyle::Turns) {
    const EncodeOptions& eo = in.bos == BosPolicy::No ? raw : with_special;
    const size_t mark = in.assistant_turn.find("{read}");
    const std::string before_read = in.assistant_turn.substr(0, mark);
    const std::string after_read = in.assistant_turn.substr(mark + 6);
    std::string text = in.preamble;
    std::vector<std::vector<int64_t>> prefixes;  // ids of the text up to each read mark
    for (size_t i = 0; i < steps.size(); ++i) {
      std::string user = in.user_turn;
      user.replace(user.find("{content}"), 9, i == 0 ? q + steps[0] : steps[i]);
      text += user + before_read;
      prefixes.push_back(tok.encode(text, eo));
      text += after_read;
    }
    r.ids = tok.encode(text, eo);
    for (size_t i = 0; i < prefixes.size(); ++i) {
      // Exact only when the text up to the read mark tokenizes as a prefix of
      // the whole (special tokens separate the turns, so it normally does).
      const auto& p = prefixes[i];
      if (p.empty() || p.size() > r.ids.size() || !std::equal(p.begin(), p.end(), r.ids.begin()))
        throw InputError("step " + std::to_string(i) + ": its turn merges with the next when tokenized");
      r.step_positions.push_back(static_cast<int64_t>(p.size()) - 1);
    }
  } else if (in.style == TemplateStyle::Text) {
    std::string text = q;
    if (!steps.empty()) text += join(steps, in.step_separator) + in.final_suffix;
    r.ids = tok.encode(text, in.bos == BosPolicy::No ? raw : with_special);
  } else {
    const auto& sp = tok.special_tokens();
    if (in.bos == BosPolicy::Yes && sp.bos_id) r.ids.push_back(*sp.bos_id);
    const std::string head_text = (in.bos == BosPolicy::Text ? sp.bos.value_or("") : "") + q;
    auto qids = tok.encode(head_text, in.bos == BosPolicy::Auto ? with_special : raw);
    r.ids.insert(r.ids.end(), qids.begin(), qids.end());
    r.solution_from = static_cast<int64_t>(r.ids.size());
    const auto sep_ids = tok.encode(in.step_separator, raw);
    if (in.steps_in_one_string) {
      std::string sol = join(steps, in.step_separator);
      if (partial && !steps.empty()) sol += in.step_separator;
      const size_t start = r.ids.size();
      if (!sol.empty()) {
        auto sids = tok.encode(sol, raw);
        r.ids.insert(r.ids.end(), sids.begin(), sids.end());
      }
      for (size_t p = start; p < r.ids.size(); ++p)
        if (r.ids[p] == newline_id_) r.step_positions.push_back(static_cast<int64_t>(p));
    } else {
      for (const auto& step : steps) {
        for (const auto& piece : in.split_steps_on_newline ? split_lines(step) : std::vector<std::string>{step}) {
          auto ids = tok.encode(piece, raw);
          r.ids.insert(r.ids.end(), ids.begin(), ids.end());
          if (in.split_steps_on_newline)
            r.ids.push_back(newline_id_);
          else
            r.ids.insert(r.ids.end(), sep_ids.begin(), sep_ids.end());
        }
        r.step_positions.push_back(static_cast<int64_t>(r.ids.size()) - 1);
      }
    }
    if (in.eos_at_end && !partial) {
      if (!sp.eos_id) throw ConfigError("spec '" + name_ + "' ends with EOS but the tokenizer has none");
      r.ids.push_back(*sp.eos_id);
      if (in.steps_in_one_string) r.step_positions.push_back(static_cast<int64_t>(r.ids.size()) - 1);
    }
    if (r.step_positions.size() != steps.size())
      throw InputError("the steps tokenize to " + std::to_string(r.step_positions.size()) + " step ends for " +
                       std::to_string(steps.size()) + " steps (a separator merged into a neighbouring token)");
  }
  if (tag_id_ >= 0)
    for (size_t p = 0; p < r.ids.size(); ++p)
      if (r.ids[p] == tag_id_) r.tag_positions.push_back(static_cast<int64_t>(p));
  if (in.style == TemplateStyle::ChatML || in.style == TemplateStyle::Text) {
    r.step_positions = r.tag_positions;
    if (!in.step_tag.empty() && r.tag_positions.size() != steps.size())
      throw InputError("the text holds " + std::to_string(r.tag_positions.size()) + " step tags for " +
                       std::to_string(steps.size()) +
                       " steps (the question contains the tag, or a step merges with it)");
  }
  if (r.ids.empty()) throw InputError("the input renders to no tokens");
  return r;
}

}  // namespace stepverify
