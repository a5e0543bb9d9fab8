// Answer extraction and equivalence, rule by rule (include/stepverify/answer.h):
// a table written from the rules and from the forms real model outputs take
// (../shared/data: ProcessBench steps, MATH-500 solutions), with the reason
// for each verdict, where the public graders disagree too; extraction cases;
// a property test on generated expressions; a user's canonicaliser; speed.
// Tags: [answer].
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "stepverify/answer.h"
#include "test_support.h"

namespace {

using stepverify::answers_equal;
using stepverify::canonical_answer;
using stepverify::extract_answer;

struct Row {
  const char* a;
  const char* b;
  bool equal;
  const char* why;
};

const std::vector<Row> kRules = {
    // --- numbers: exact values, 10 significant digits ---
    {"\\frac{1}{12}", "0.0833333333333333", true, "a float printed to 16 digits equals the exact value (10 digits)"},
    {"\\sqrt{17}", "4.123105625617661", true, "a radical equals its float (10 digits)"},
    {"\\frac{1}{3}", "0.3333333333", true, "ten 3s agree to 10 significant digits"},
    {"\\frac{1}{3}", "0.333333", false, "six digits are a different number (qwen's 1e-4 would merge; a key cannot)"},
    {"16386.16", "16386.20", false, "cents differ (a coarse tolerance would merge money answers)"},
    {"16386.2", "16386.20", true, "trailing zero"},
    {"\\pi", "3.141592654", true, "pi to 10 digits"},
    {"\\pi", "3.14", false, "pi is not 3.14"},
    {"e", "2.718281828", true, "e is Euler's number"},
    {"e^2", "7.389056099", true, "powers of e evaluate"},
    {"\\ln(e^3)", "3", true, "natural logarithm"},
    {"\\log_2 8", "3", true, "logarithm with a base"},
    {"\\log_{10} 1000", "3", true, "braced base"},
    {"\\sin(\\pi/6)", "\\frac{1}{2}", true, "trigonometry at exact angles"},
    {"\\cos(0)", "1", true, "cosine"},
    {"\\tan\\frac{\\pi}{4}", "1", true, "tangent with a LaTeX argument"},
    {"\\sqrt{8}", "2\\sqrt{2}", true, "radical simplification"},
    {"\\sqrt{\\frac{1}{2}}", "\\frac{\\sqrt{2}}{2}", true, "radical of a fraction"},
    {"\\frac{10\\sqrt{10.5}}{27}", "\\frac{5\\sqrt{42}}{27}", true, "radical of a decimal"},
    {"\\sqrt[3]{27}", "3", true, "cube root"},
    {"\\sqrt[3]{-8}", "-2", true, "odd root of a negative number is real"},
    {"8^{1/3}", "2", true, "fractional power"},
    {"4^{-1/2}", "0.5", true, "negative fractional power"},
    {"2^{-3}", "\\frac{1}{8}", true, "negative power"},
    {"(9+1)", "10", true, "arithmetic in brackets"},
    {"2 \\times 3 + 4", "10", true, "times"},
    {"2 \\cdot 3^2", "18", true, "cdot and power"},
    {"12 \\div 4", "3", true, "division sign"},
    {"5!", "120", true, "factorial"},
    {"\\binom{6}{3}", "20", true, "binomial"},
    {"|-7|", "7", true, "absolute value"},
    {"1.5e3", "1500", true, "scientific notation"},
    {"2.5\\times10^{-3}", "0.0025", true, "times ten to a power"},
    {"12345678901", "12345678902", false, "integers beyond 10 digits stay exact"},
    {"12000023", "12,000,023", true, "thousands separators"},
    {"5866608", "5866607", false, "big integers are compared exactly"},
    {"2^{100}", "1267650600228229401496703205376", true, "a power equals its digits"},
    {"1000000", "10^6", true, "power of ten"},
    {"0", "-0", true, "signed zero"},
    {"0.0", "0", true, "zero decimal"},
    {"-5", "5", false, "sign"},
    {"(-5)", "-5", true, "bracketed negative"},
    {"i^2", "-1", true, "i is the imaginary unit"},
    {"(1+i)^2", "2i", true, "complex arithmetic"},
    {"3+4i", "4i+3", true, "complex order"},
    {"3+4i", "3-4i", false, "conjugates differ"},
    {"\\sqrt{-4}", "2i", true, "square root of a negative number"},
    // --- decimal commas and thousands separators ---
    {"1,22", "1.22", true, "decimal comma: two digits after it"},
    {"1000,99", "1000.99", true, "decimal comma: four digits before it"},
    {"0,111", "0.111", true, "decimal comma: 0 before it"},
    {"2,74", "2.74", true, "decimal comma"},
    {"3,14", "3.14", true, "decimal comma"},
    {"1,234", "1234", true, "rule: one comma before three digits is a thousands separator"},
    {"1,234", "1.234", false, "rule: 1,234 is one thousand two hundred thirty-four"},
    {"1,5", "1.5", false, "rule: one digit on each side is a list of two numbers"},
    {"1,5", "5, 1", true, "the list 1, 5"},
    {"1 000", "1000", true, "space as thousands separator"},
    {"10 000 000", "10000000", true, "spaces in groups of three"},
    {"14{,}916", "14916", true, "LaTeX thousands separator"},
    {"32,\\! 349", "32349", true, "thin-space separator"},
    {"32, 349", "32349", false, "a comma and a space separate list items"},
    {"1,000.99", "1000.99", true, "thousands and decimal point"},
    {"7,425,000", "7425000", true, "several groups"},
    {"1,0000", "10000", false, "a malformed group is not a thousands separator"},
    // --- percent, currency, units, degrees ---
    {"28\\%", "28", true, "percent is a marker (hendrycks, prm800k, qwen strip it)"},
    {"28\\%", "28 percent", true, "percent as a word"},
    {"28\\%", "28 pct", true, "pct"},
    {"28\\%", "28 percentage", true, "percentage"},
    {"28 %", "28", true, "spaced percent sign"},
    {"28\\%", "0.28", false, "a percentage is not divided by 100 (qwen would merge)"},
    {"\\frac{28}{100}", "28", false, "a fraction is its value"},
    {"\\$1,000.99", "1000.99", true, "dollar sign"},
    {"1,000.99\xE2\x82\xAC", "1000.99", true, "euro sign"},
    {"15\\text{ cm}^2", "15", true, "unit in text"},
    {"5 \\text{ cm}", "5", true, "spaced unit"},
    {"125\\textnormal{ miles}", "125", true, "textnormal unit"},
    {"\\frac{1}{3} \\textbf{meters}", "\\frac{1}{3}", true, "bold unit"},
    {"90^\\circ", "90", true, "degree sign"},
    {"166^{\\circ}", "166", true, "braced degree sign"},
    {"45\xC2\xB0", "45", true, "unicode degree sign"},
    {"90^\\circ", "\\frac{\\pi}{2}", false, "degrees are never converted"},
    {"12 \\text{ and } 13", "12, 13", true, "'and' between values is a list"},
    {"x = 1 \\text{ or } x = 2", "1, 2", true, "'or' between solutions"},
    // --- shorthand LaTeX ---
    {"\\frac13", "\\frac{1}{3}", true, "frac shorthand"},
    {"\\frac3{3}", "1", true, "one braced argument"},
    {"\\tfrac12", "0.5", true, "tfrac"},
    {"\\dfrac{1}{3}", "1/3", true, "dfrac"},
    {"\\cfrac{1}{3}", "1/3", true, "cfrac"},
    {"\\frac94\\pi", "\\frac{9}{4}\\pi", true, "shorthand before a symbol"},
    {"\\frac{9\\pi}{4}", "\\frac{9}{4}\\pi", true, "pi in the numerator"},
    {"\\sqrt 2+\\sqrt 5", "\\sqrt{2}+\\sqrt{5}", true, "sqrt with a space"},
    {"\\sqrt3", "\\sqrt{3}", true, "sqrt shorthand"},
    {"\\left( \\frac{1}{3} \\right)", "1/3", true, "left/right"},
    {"\\\\frac{1}{3}", "1/3", true, "a doubled backslash (an escaping slip)"},
    {"-\\frac{10}{9}", "-10/9", true, "signed fraction"},
    {"\\frac{-10}{9}", "-10/9", true, "sign in the numerator"},
    {"3\\sqrt{13}", "\\sqrt{117}", true, "radical forms"},
    {"\\frac{\\sqrt{\\sqrt{11}+\\sqrt{194}}}{15+2\\sqrt{33}}", "\\frac{\\sqrt{\\sqrt{11}+\\sqrt{194}}}{2\\sqrt{33}+15}",
     true, "nested radicals, reordered sum"},
    // --- expressions with variables: compared as functions ---
    {"\\frac{x+2}{7}", "\\frac{x}{7}+\\frac{2}{7}", true, "splitting a fraction"},
    {"\\frac{x^2-1}{x-1}", "x+1", true, "a rational function equals its reduced form"},
    {"\\frac{1}{x+1}+\\frac{1}{x-1}", "\\frac{2x}{x^2-1}", true, "partial fractions"},
    {"\\tan^2(y)+1", "\\sec^2(y)", true, "trigonometric identity"},
    {"\\sin^2 x + \\cos^2 x", "1", true, "Pythagorean identity"},
    {"2\\sin b\\cos a", "\\sin(a+b)-\\sin(a-b)", true, "sum to product"},
    {"\\frac{1}{3\\sqrt[3]{x}^2}", "\\frac{1}{3x^{2/3}}", true, "radical and fractional power"},
    {"e^{x}e^{y}", "e^{x+y}", true, "exponent rules"},
    {"\\ln(xy)", "\\ln x + \\ln y", true, "logarithm of a product (positive values)"},
    {"(a+b)^2", "a^2+2ab+b^2", true, "expansion"},
    {"(a+5)(b+2)", "(+5)(b+2)", false, "a dropped factor"},
    {"x+2n+1", "x+1", false, "a dropped term"},
    {"2-2p", "-2p+2", true, "reordered"},
    {"\\frac{\\pi r}{h+r}", "\\frac{r\\pi}{r+h}", true, "commuted"},
    {"n-2", "n+2", false, "sign of a term"},
    {"-2t + 4", "4-2t", true, "a real model answer, reordered"},
    {"2x", "x2", true, "a product is commutative"},
    {"2x", "2t", false, "different variables"},
    {"x", "X", false, "letters are case-sensitive"},
    {"\\alpha+\\beta", "\\beta+\\alpha", true, "Greek letters"},
    {"a_1+a_2", "a_2+a_1", true, "subscripted variables"},
    {"a_1", "a_2", false, "different subscripts"},
    {"f(x) = x + 1", "x+1", true, "a function's formula: its value"},
    {"f(x) = \\frac{1}{x}", "\\frac{1}{x}", true, "a function's formula"},
    {"g(t) = t^2", "t^2", true, "another function name"},
    // --- relations and equations ---
    {"x > 5", "x < 5", false, "a relation keeps its direction"},
    {"x \\geq 5", "x \\leq 5", false, "direction"},
    {"x < 1", "-x > -1", true, "multiplying by -1 flips the relation"},
    {"x \\le 1", "-x \\ge -1", true, "non-strict flipped"},
    {"x < 1", "x > -1", false, "different half-lines"},
    {"x \\leq 5", "5 \\geq x", true, "sides swapped"},
    {"x >= 5", "x \\geq 5", true, "ASCII >="},
    {"x \\lt 3", "x < 3", true, "\\lt"},
    {"x \\gt 5", "x > 5", true, "\\gt"},
    {"x \\neq 3", "x != 3", true, "not equal spellings"},
    {"x \\ne 3", "x \\neq 3", true, "\\ne"},
    {"x \xE2\x89\xA4 2", "x \\le 2", true, "unicode less-or-equal"},
    {"2x < 6", "x < 3", true, "a positive factor"},
    {"x > 5", "(5, \\infty)", true, "a half-line is its interval"},
    {"x \\ge 5", "[5, \\infty)", true, "closed end"},
    {"x < 3", "(-\\infty, 3)", true, "left half-line"},
    {"x \\neq 3", "(-\\infty,3)\\cup(3,\\infty)", true, "all but one point"},
    {"-2 \\le x \\le 7", "[-2,7]", true, "a double inequality is an interval"},
    {"-2 \\le x \\le 7", "x \\in [-2,7]", true, "membership"},
    {"-2 < x \\le 7", "(-2,7]", true, "mixed ends"},
    {"7 \\ge x > -2", "(-2, 7]", true, "descending double inequality"},
    {"-2 \\le x < 7", "[-2,7]", false, "open vs closed end"},
    {"x^2 < 4", "x^2 - 4 < 0", true, "a nonlinear relation up to a positive factor"},
    {"x^2 < 4", "x^2 > 4", false, "direction of a nonlinear relation"},
    {"f(2) < f(1) < f(4)", "f(2)<f(1)<f(4)", true, "a chain of relations"},
    {"f(2) < f(1) < f(4)", "f(1) < f(2) < f(4)", false, "a different order"},
    {"x = 11", "11", true, "a value assigned to a variable is the value"},
    {"k = 1", "1", true, "another variable"},
    {"x = 5+5+1 = 7 = 11", "11", true, "a computation chain ends in its value"},
    {"x = 1/3 \\approx 0.33", "\\frac{1}{3}", true, "the approximation after the value is dropped"},
    {"x \\approx 11", "11", true, "an approximation alone is the value"},
    {"1 = \\zeta = x = 0", "0", true, "a chain ending in a number"},
    {"z = 1 + 1 = 2", "z = 3+3 = 2", true, "both chains end in 2"},
    {"\\frac{1}{2} = \\frac{10}{20}", "\\frac{1}{2}", true, "a computation of numbers is its result"},
    {"\\cos \\angle RPS = -\\frac{24}{25}", "-\\frac{24}{25}", true,
     "a named quantity (no expression) set to a number is the number (a real model's last line)"},
    {"\\frac{1}{\\sin x \\cos x} - \\tan x", "\\cot x", true,
     "a real model's answer equal to the gold by an identity (ProcessBench labels it wrong)"},
    {"7 = 11a+c", "11a+c", false, "an equation is not its right side"},
    {"x(x-3) = 0", "0", false, "a product set to zero is an equation, not a function's value"},
    {"x(x-3) = 0", "x^2 - 3x = 0", true, "the same equation expanded"},
    {"P(2) = 5", "5", true, "a function's value at a number"},
    {"-\\infty < x \\le 3", "(-\\infty, 3]", true, "a double inequality with an infinite end"},
    {"a + 3z = 0", "0", false, "an equation is not its right side"},
    {"2x + z = 1", "1", false, "an equation is not a number"},
    {"2x+4y-3=0", "y=-\\frac{1}{2}x+\\frac{3}{4}", true, "the same line, rearranged"},
    {"\\frac{x^2}{4} + \\frac{y^2}{3} = 1", "\\frac{x^2}{16} + \\frac{y^2}{12} = \\frac{1}{4}", true,
     "an equation up to a factor"},
    {"34x+45y-20z+100=0", "-34x-45y+20z-100=0", true, "up to the factor -1"},
    {"x-2y+z-1=0", "x-2y+z=1", true, "constant moved"},
    {"x-2y+z-1=0", "x-2y+z+1=0", false, "different planes"},
    {"y = 2x + 3", "y - 2x = 3", true, "a line in two forms"},
    {"y = 2x + 3", "2x + 3", false, "a line is not an expression"},
    {"x = 1, y = 2", "1, 2", true, "values of a system, as a list"},
    {"(p,q,r) = (6,31,-1)", "(6,31,-1)", true, "a tuple of unknowns"},
    {"(t,u) = \\left( \\frac{4}{3}, -\\frac{1}{3} \\right)", "(\\frac43, -\\frac13)", true, "a tuple of unknowns"},
    // --- sets, lists, plus-minus ---
    {"1, 3, 5, 15", "15, 5, 3, 1", true, "a list of solutions is unordered"},
    {"-2,1", "1,-2", true, "roots in any order"},
    {"\\{1,3\\}", "1, 3", true, "a set and a bare list"},
    {"\\{1,3\\}", "(1,3)", false, "a set is not a tuple"},
    {"(1,3)", "(3,1)", false, "a tuple is ordered"},
    {"\\{1, 2\\}", "\\{1, 2, 2\\}", true, "a set drops duplicates"},
    {"\\{5\\}", "5", true, "a one-element set is its element"},
    {"\\boxed{1}, \\boxed{2}", "1, 2", true, "several boxes"},
    {"1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}", true, "plus-minus is the set of both"},
    {"3 \\pm 2\\sqrt{2}", "3-2\\sqrt{2}, 3+2\\sqrt{2}", true, "plus-minus, listed the other way"},
    {"\\{1\\pm\\sqrt{5},-2\\}", "-2, 1-\\sqrt{5}, 1+\\sqrt{5}", true, "plus-minus inside a set"},
    {"\\pm 3", "3, -3", true, "a leading plus-minus"},
    {"x = \\pm 2", "-2, 2", true, "an assigned plus-minus"},
    {"1 \\pm \\sqrt{19}", "1 + \\sqrt{19}", false, "one root of two"},
    {"1 \\pm 2 \\mp 3", "0, 2", true, "correlated signs: 1+2-3 and 1-2+3"},
    {"1 \\pm 2 \\pm 3", "6, -4", true, "correlated signs: 1+2+3 and 1-2-3"},
    {"1, 2, 3", "1, 2, 3, \\ldots", false, "an ellipsis continues the list"},
    {"1, 2, 3, ...", "1,2,3,\\dots", true, "ellipsis spellings"},
    {"27, 54, 135", "135, 27, 54", true, "a real model's list of values"},
    {"\\emptyset", "\\{\\}", true, "empty set"},
    // --- intervals and unions ---
    {"[0,1)", "[0, 1)", true, "spacing"},
    {"(0,9)", "[0,9)", false, "open vs closed"},
    {"[0,9)", "[0,1)", false, "endpoint"},
    {"(-\\infty, \\infty)", "\\mathbb{R}", true, "all reals"},
    {"(\\frac{3}{5},\\frac{8}{3}]", "(0.6,\\frac{8}{3}]", true, "endpoints compared as numbers"},
    {"(1,\\frac{9}{2})", "(1,4.5)", true, "tuple elements compared as numbers"},
    {"[-1, -\\frac{1}{2}) \\cup (-\\frac{1}{2}, 0)", "(-\\tfrac12, 0) \\cup [-1, -\\tfrac12)", true,
     "a union is unordered"},
    {"\\{-1\\} \\cup [0,7)", "[0,7) \\cup \\{-1\\}", true, "a point and an interval"},
    {"(2,12) \\cup (12,102)", "x \\in (2,12) \\cup (12,102)", true, "membership in a union"},
    {"(-\\infty, -3] \\cup [2, \\infty)", "[-3,2]", false, "complement"},
    // --- matrices ---
    {"\\begin{pmatrix} 0 & 3 \\\\ 0 & -1 \\end{pmatrix}", "\\begin{bmatrix}0&3\\\\0&-1\\end{bmatrix}", true,
     "bracket styles"},
    {"\\begin{pmatrix}1 & 2 \\\\3 & 4\\end{pmatrix}", "\\left[\\begin{array}{cc}1 & 2 \\\\3 & 4\\end{array}\\right]",
     true, "array in brackets"},
    {"\\begin{pmatrix}\\frac{1}{2} & \\frac{3}{4}\\end{pmatrix}", "\\begin{pmatrix}0.5 & 0.75\\end{pmatrix}", true,
     "cells compared as numbers"},
    {"\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}", "\\begin{pmatrix}1 & 2 \\\\ 3 & 5\\end{pmatrix}", false,
     "one cell"},
    {"\\begin{pmatrix}1 \\\\ 2\\end{pmatrix}", "\\begin{pmatrix}1 & 2\\end{pmatrix}", false, "column vs row vector"},
    {"\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix} + \\begin{pmatrix}5 & 6 \\\\ 7 & 8\\end{pmatrix}",
     "\\begin{pmatrix}6 & 8 \\\\ 10 & 12\\end{pmatrix}", true, "a sum of matrices is evaluated"},
    {"\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix} \\begin{pmatrix}0 & 1 \\\\ 1 & 0\\end{pmatrix}",
     "\\begin{pmatrix}2 & 1 \\\\ 4 & 3\\end{pmatrix}", true, "a product of matrices (columns swapped)"},
    {"\\begin{pmatrix}0 & 1 \\\\ 1 & 0\\end{pmatrix} \\cdot \\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}",
     "\\begin{pmatrix}2 & 1 \\\\ 4 & 3\\end{pmatrix}", false, "matrix products do not commute (rows swapped)"},
    {"\\begin{pmatrix}1 & 2\\end{pmatrix} - \\begin{pmatrix}1 & 2\\end{pmatrix}", "\\begin{pmatrix}0 & 0\\end{pmatrix}",
     true, "a difference"},
    {"\\begin{pmatrix}1 & 2\\end{pmatrix} + \\begin{pmatrix}1 \\\\ 2\\end{pmatrix}",
     "\\begin{pmatrix}2 & 4\\end{pmatrix}", false, "shapes that do not add stay text"},
    // --- letters, words, bases, choices ---
    {"204_5", "204_{5}", true, "base subscript spellings"},
    {"1112112_3", "1112122_3", false, "different base numerals"},
    {"204_5", "54", false, "base numerals are not converted (the question asks for that base)"},
    {"\\text{C}", "\\text{(C)}", true, "choice letter"},
    {"\\text{E}", "E", true, "choice letter in text"},
    {"\\text{Evelyn}", "Evelyn", true, "a name"},
    {"Sunday", "\\text{sunday}", true, "a day, case-insensitive"},
    {"\\text{Sunday}", "Monday", false, "different days"},
    {"\\text{yes}", "Yes", true, "yes"},
    {"No", "no", true, "a two-letter word, case-insensitive"},
    {"no", "on", false, "not the product of the letters n and o"},
    {"2e - 1", "2e-1", false, "2e minus 1 is not the literal 0.2"},
    {"2e-1", "0.2", true, "scientific notation"},
    {"204_5 + 1", "1+204_{5}", true, "a numeral in an expression is kept exactly"},
    {"\\text{odd}", "\\text{even}", false, "different words"},
};

// Extraction: text -> an answer equal (MathEquivalence) to `want`, or none.
struct Extraction {
  const char* text;
  const char* want;  // nullptr: nothing is extracted
  const char* why;
};

const std::vector<Extraction> kExtraction = {
    {"$\\frac{14}{3}$", "\\frac{14}{3}", "a gold answer in dollars is read whole, not as its last number 3"},
    {"$1/3$", "1/3", "whole"},
    {"$3\\sqrt{13}$", "3\\sqrt{13}", "whole"},
    {"$(3, \\frac{\\pi}{2})$", "(3,\\frac{\\pi}{2})", "whole tuple"},
    {"$x > 5$", "x > 5", "whole relation"},
    {"28 percent", "28", "whole, with a percent word"},
    {"1 000", "1000", "whole, space thousands"},
    {"$125$ miles", "125", "math span followed by a unit"},
    {"Answer \\( (9+1) \\)", "10", "the last math span, evaluated"},
    {"Answer \\[ 9 \\]", "9", "display math"},
    {"Answer $$ \n 9 \n $$", "9", "display math may span lines"},
    {"Answer \\[ \n 9 \n \\]", "9", "display math may span lines"},
    {"Answer $ \\frac{1}{2} \\$ = \\frac{10}{9} $", "10/9", "an escaped dollar inside a span; the computation's end"},
    {"Therefore $x < 5$ is the solution.", "x < 5", "a relation in a sentence"},
    {"Thus $x <= 2$ is our answer.", "x \\le 2", "ASCII relation in a sentence"},
    {"We find that $x \\neq 3$.", "x \\ne 3", "not-equal in a sentence"},
    {"$x = 5+5+1 = 1/3 \\approx 11$", "1/3", "the value before an approximation"},
    {"Final Answer: The largest $n$ is 34.", "34", "a number after the last math span wins"},
    {"the number of points in the domain of $f(x)$ is 19.", "19", "a number after a math span"},
    {"Soucis : 2,74 $ a..", "2.74", "a decimal comma in prose"},
    {"the number is not 10 which is 1,000.99\xE2\x82\xAC", "1000.99", "the last number, with a currency sign"},
    {"so the number is 10 which is 1,000.99m\xC2\xB2", "1000.99", "the last number, with a unit"},
    {"AZYUK2A", nullptr, "a digit inside a word is not a number"},
    {"the probability that Alice wins is 2/3. <|im_start|>user", "2/3", "a fraction as the last number"},
    {"The final answer is 12,000,023. I hope it is correct.", "12000023", "thousands separators"},
    {"$\\boxed{28}$ pct", "28", "a box"},
    {"$\\boxed{28 pct}", "28", "a unit word in a box"},
    {"\\boxed{-2} \\quad \\text{and} \\quad \\boxed{1}.", "1, -2", "adjacent boxes form a list"},
    {"$\\boxed{1}\\boxed{2}$", "1, 2", "boxes side by side"},
    {"first \\boxed{1} then \\boxed{2}", "2", "boxes with words between are not joined"},
    {"$d = \\boxed{15\\frac{39}{40}},$ or $\\boxed{\\frac{639}{40}}$ inches.", "\\frac{639}{40}",
     "two boxes of one value"},
    {"so $0.05 \\cdot 10{,}200 = \\boxed{255}$ ... Final Answer: The final answer is $10,455$. I hope it is correct.",
     "10455", "a final-answer phrase after the last box wins"},
    {"Therefore, $17^{-1}\\equiv \\boxed{44}\\pmod{83}$. We check: so our answer is correct.", "44",
     "a plain 'answer is' after a box does not beat it"},
    {"Final Answer: The final answer is \\((-6, 10)\\). I hope it is correct.", "(-6, 10)", "a phrase with \\( \\)"},
    {"The answer is $\\frac{1}{3}.$", "\\frac{1}{3}", "trailing punctuation inside the span"},
    {"$\\frac{1}{3},$", "\\frac{1}{3}", "trailing comma"},
    {"$1, 2, 3, ...$", "1, 2, 3, \\ldots", "an ellipsis is kept"},
    {"Thus, the answer is $x \\in \\boxed{(2,12) \\cup (12,102)}$", "(2,12)\\cup(12,102)", "a box inside a span"},
    {"The solution is \\( x \\in (-6, 10) \\).", "(-6,10)", "membership in a math span"},
    {"$\\boxed{\\text{(C)}}.$", "C", "a choice letter"},
    {"is $\\boxed{11,\\! 111,\\! 111,\\! 100}$", "11111111100", "thin-space separators in a box"},
    {"is $\\boxed{32, 349}$", "32, 349", "a list in a box"},
    {"Answer $ \n 9 \n $ and nothing else", "9", "an inline span may not cross lines: the last number"},
    {"x = \\boxed{1 \\pm \\sqrt{19}}.", "1-\\sqrt{19}, 1+\\sqrt{19}", "plus-minus in a box"},
    {"The final answer is Sunday.", "Sunday", "a word answer after a phrase"},
    {"The answer is 4 4/9.", "40/9", "a mixed number in a sentence"},
    {"4 4/9 2", "2", "a number after a mixed number is no product: the last number"},
    {"No", "no", "a gold 'No' is read whole"},
    {"$\\text{No}$", "no", "a word in text"},
};

}  // namespace

TEST_CASE("answer rules table: every rule of answer.h with its reason", "[answer]") {
  REQUIRE(kRules.size() >= 180);
  size_t equal_rows = 0;
  for (const Row& r : kRules) {
    INFO(r.a << "  vs  " << r.b << "  (" << r.why << ")\n  keys: " << canonical_answer(r.a) << "  |  "
             << canonical_answer(r.b));
    CHECK(answers_equal(r.a, r.b) == r.equal);
    CHECK(answers_equal(r.b, r.a) == r.equal);  // symmetry
    CHECK(answers_equal(r.a, r.a));             // reflexivity
    equal_rows += r.equal;
  }
  CHECK(equal_rows >= 60);
  CHECK(kRules.size() - equal_rows >= 40);
}

TEST_CASE("extraction table: whole answers, boxes, phrases, math spans, numbers", "[answer]") {
  REQUIRE(kExtraction.size() >= 40);
  for (const Extraction& e : kExtraction) {
    const auto got = extract_answer(e.text);
    INFO(e.text << "\n  extracted: " << got.value_or("<none>") << "  (" << e.why << ")");
    if (!e.want) {
      CHECK_FALSE(got.has_value());
    } else {
      REQUIRE(got.has_value());
      CHECK(answers_equal(*got, e.want));
    }
  }
}

TEST_CASE("equivalence is an equivalence relation on generated expressions with variables", "[answer]") {
  // Polynomials in x and y with small integer coefficients, each written in
  // several forms (expanded, factored, scaled fractions, reordered); two texts
  // are equal iff their coefficient vectors are.
  std::mt19937 rng(7);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  struct Gen {
    std::string text;
    std::vector<int> coef;  // of 1, x, y, xy, x^2 (value of the text)
  };
  std::vector<Gen> gens;
  auto sgn = [](int v) { return v < 0 ? std::string("-") + std::to_string(-v) : "+" + std::to_string(v); };
  for (int n = 0; n < 120; ++n) {
    // (a x + b)(c x + d y) expanded or not: a c x^2 + a d xy + b c x + b d y.
    const int a = pick(1, 2), b = pick(-2, 2), c = pick(1, 2), d = pick(-1, 1);
    const std::vector<int> coef = {0, b * c, b * d, a * d, a * c};
    std::string t;
    switch (pick(0, 4)) {
      case 0:
        t = "(" + std::to_string(a) + "x" + sgn(b) + ")(" + std::to_string(c) + "x" + sgn(d) + "y)";
        break;
      case 1:  // expanded, in a shuffled order
      {
        std::vector<std::string> terms = {sgn(a * c) + "x^2", sgn(a * d) + "xy", sgn(b * c) + "x", sgn(b * d) + "y"};
        std::shuffle(terms.begin(), terms.end(), rng);
        for (const auto& s : terms) t += s;
        break;
      }
      case 2:  // over a common denominator
        t = "\\frac{(" + std::to_string(2 * a) + "x" + sgn(2 * b) + ")(" + std::to_string(c) + "x" + sgn(d) + "y)}{2}";
        break;
      case 3:  // y written as a factor first
        t = "(" + std::to_string(c) + "x" + sgn(d) + "y)\\cdot(" + sgn(b) + "+" + std::to_string(a) + "x)";
        break;
      default:  // scaled inside and out
        t = "\\frac{1}{2}\\left(" + std::to_string(2 * a) + "x" + sgn(2 * b) + "\\right)\\left(" + std::to_string(c) +
            "x" + sgn(d) + "y\\right)";
        break;
    }
    gens.push_back({t, coef});
  }
  const stepverify::MathEquivalence equiv;
  const size_t n = gens.size();
  std::vector<std::string> keys;
  for (const auto& g : gens) keys.push_back(equiv.canonical(g.text));
  size_t wrong = 0, violations = 0;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      const bool same = gens[i].coef == gens[j].coef, eq = keys[i] == keys[j];
      if (same != eq) {
        ++wrong;
        INFO(gens[i].text << " vs " << gens[j].text << "\n  " << keys[i] << "\n  " << keys[j]);
        CHECK(same == eq);
      }
      if (equiv.equal(gens[i].text, gens[j].text) != equiv.equal(gens[j].text, gens[i].text)) ++violations;
      if (!eq) continue;
      for (size_t k = 0; k < n; ++k)
        if (keys[j] == keys[k] && keys[i] != keys[k]) ++violations;
    }
  CHECK(wrong == 0);
  CHECK(violations == 0);
}

TEST_CASE("a user's canonicaliser: its keys, the fallback, and selection with it", "[answer]") {
  // Chemical formulas: the elements with their counts, in any order.
  auto formula = [](std::string_view s) -> std::optional<std::string> {
    std::map<std::string, int> counts;
    for (size_t i = 0; i < s.size();) {
      if (!(s[i] >= 'A' && s[i] <= 'Z')) return std::nullopt;
      std::string el(1, s[i++]);
      while (i < s.size() && s[i] >= 'a' && s[i] <= 'z') el += s[i++];
      int n = 0;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') n = n * 10 + (s[i++] - '0');
      counts[el] += n ? n : 1;
    }
    if (counts.size() < 2) return std::nullopt;  // "H", "C": leave letters to the math rules
    std::string key;
    for (const auto& [el, n] : counts) key += el + std::to_string(n);
    return key;
  };
  const stepverify::CustomEquivalence chem(formula);
  CHECK(chem.equal("H2O", "OH2"));
  CHECK(chem.equal("C6H12O6", "H12C6O6"));
  CHECK_FALSE(chem.equal("H2O", "H2O2"));
  CHECK(chem.canonical("H2O") == "u:H2O1");
  // Answers the rule leaves alone fall back to MathEquivalence.
  CHECK(chem.equal("\\frac{1}{2}", "0.5"));
  CHECK(chem.canonical("0.5") == "m:" + canonical_answer("0.5"));
  CHECK(chem.equal("C", "(C)"));  // both left to the math rules: the choice letter C
  // A fallback of the user's choice.
  const stepverify::StringEquivalence strict;
  const stepverify::CustomEquivalence chem_strict(formula, &strict);
  CHECK_FALSE(chem_strict.equal("\\frac{1}{2}", "0.5"));
  CHECK(chem_strict.equal("OH2", "H2O"));
  // Voting with it: three spellings of water beat two of hydrogen peroxide.
  std::vector<stepverify::Candidate> c = {{"\\boxed{H2O}", {}, 0.1, {}},
                                          {"\\boxed{H2O2}", {}, 0.9, {}},
                                          {"\\boxed{OH2}", {}, 0.2, {}},
                                          {"\\boxed{HOH}", {}, 0.3, {}},
                                          {"\\boxed{O2H2}", {}, 0.5, {}}};
  stepverify::SelectionOptions so;
  so.equivalence = &chem;
  const auto sel = stepverify::select_answer(c, so);
  CHECK(sel.majority == "H2O");
  CHECK(sel.weighted == "H2O2");  // 1.4 > 0.6
  CHECK(sel.groups.size() == 2);
  // Without the rule the math rules read them as products of letters:
  // H2O = OH2 = 2HO, H2O2 = O2H2 = 4HO, HOH = H^2 O.
  CHECK(stepverify::select_answer(c).groups.size() == 3);
}

TEST_CASE("answers: extraction and keys of 500 MATH-500 solutions take well under a second", "[answer]") {
  const auto path = stepverify::test::data_dir() / "math500" / "test500.jsonl";
  std::ifstream in(path);
  if (!in) {
    stepverify::test::missing_input(path.string() + " is absent");
    return;
  }
  std::vector<std::string> solutions;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) solutions.push_back(nlohmann::json::parse(line)["solution"].get<std::string>());
  REQUIRE(solutions.size() == 500);
  const auto t0 = std::chrono::steady_clock::now();
  size_t found = 0;
  for (const auto& s : solutions)
    if (auto a = extract_answer(s)) found += !canonical_answer(*a).empty();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  WARN("500 MATH-500 solutions: extraction + key in " << secs << " s");
  CHECK(found == 500);
  CHECK(secs < 1.0);
}

TEST_CASE("real model outputs: ProcessBench MATH solutions graded as its authors graded them", "[answer][data]") {
  // ProcessBench's final_answer_correct came from Qwen's evaluation harness;
  // its MATH problems that also appear in MATH (test500 or the train answers)
  // give the gold answer. Our verdict: extract from the steps, compare.
  const auto dir = stepverify::test::data_dir();
  std::ifstream pb(dir / "processbench" / "math.json"), test(dir / "math500" / "test500.jsonl"),
      train(dir / "math500" / "math_train_problems_answers.json");
  if (!pb || !test || !train) {
    stepverify::test::missing_input((dir / "processbench").string() + " or " + (dir / "math500").string() +
                                    " is absent");
    return;
  }
  std::map<std::string, std::string> gold;
  for (std::string line; std::getline(test, line);)
    if (!line.empty()) {
      const auto j = nlohmann::json::parse(line);
      gold[j["problem"].get<std::string>()] = j["answer"].get<std::string>();
    }
  for (const auto& j : nlohmann::json::parse(train)) gold.emplace(j["problem"], j["final_answer"]);
  size_t n = 0, agree = 0;
  for (const auto& x : nlohmann::json::parse(pb)) {
    const auto g = gold.find(x["problem"].get<std::string>());
    if (g == gold.end()) continue;
    std::string text;
    for (const auto& s : x["steps"]) text += s.get<std::string>() + "\n\n";
    const auto got = extract_answer(text);
    const bool ours = got && answers_equal(*got, g->second);
    agree += ours == x["final_answer_correct"].get<bool>();
    if (ours != x["final_answer_correct"].get<bool>())
      WARN("ProcessBench " << x["id"] << ": gold " << g->second << ", extracted " << got.value_or("<none>"));
    ++n;
  }
  WARN("ProcessBench MATH with known gold: agreement " << agree << "/" << n);
  REQUIRE(n >= 100);
  CHECK(static_cast<double>(agree) >= 0.97 * static_cast<double>(n));
}
