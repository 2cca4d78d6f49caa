"""Hand-written math answer pairs: (gold, predicted final answer, mathematically equal?, category).

The verdicts come from the mathematics (and, for unit/format variants, from what a human
grader accepts), not from any checker. Ambiguous pairs (``50`` for ``50\\%``, mixed
numbers such as ``3\\frac12``) are deliberately left out.
"""

T, F = True, False

PAIRS: list[tuple[str, str, bool, str]] = [
    # integers
    ("42", "42", T, "integer"),
    ("42", "42.0", T, "integer"),
    ("-3", "-3", T, "integer"),
    ("3", "-3", F, "integer"),
    ("1000", "1,000", T, "integer"),
    ("-5", "- 5", T, "integer"),
    ("17", "71", F, "integer"),
    ("0", "0", T, "integer"),
    # fractions and decimals
    ("\\frac{1}{2}", "0.5", T, "fraction"),
    ("\\frac{1}{2}", "\\dfrac{1}{2}", T, "fraction"),
    ("\\frac12", "1/2", T, "fraction"),
    ("\\frac{3}{4}", "0.75", T, "fraction"),
    ("\\frac{1}{3}", "0.3", F, "fraction"),
    ("\\frac{2}{3}", "\\frac{4}{6}", T, "fraction"),
    ("\\frac{2}{3}", "\\frac{3}{2}", F, "fraction"),
    ("-\\frac{1}{2}", "\\frac{-1}{2}", T, "fraction"),
    ("-\\frac{1}{2}", "\\frac{1}{2}", F, "fraction"),
    ("0.25", "\\frac{1}{4}", T, "fraction"),
    ("2.5", "\\frac{5}{2}", T, "fraction"),
    ("\\tfrac{5}{8}", "0.625", T, "fraction"),
    ("1.5", "1.50", T, "fraction"),
    ("0.1", "0.01", F, "fraction"),
    ("\\frac{7}{3}", "\\frac{14}{6}", T, "fraction"),
    ("\\frac{1}{3}", "0.33", F, "fraction"),
    # wrong but numerically close
    ("\\frac{1}{2004!}", "\\frac{1}{2006!}", F, "close"),
    ("10^{-10}", "10^{-11}", F, "close"),
    ("2^{100}", "2^{100}+1", F, "close"),
    ("\\frac{1}{1000000}", "\\frac{1}{1000001}", F, "close"),
    ("1000000", "1000001", F, "close"),
    ("999999", "1000000", F, "close"),
    ("\\frac{1}{10^{9}}", "0", F, "close"),
    ("\\pi", "3.14", F, "close"),
    ("\\frac{22}{7}", "\\pi", F, "close"),
    ("1.0001", "1", F, "close"),
    # surds, constants
    ("2\\sqrt{2}", "\\sqrt{8}", T, "surd"),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", T, "surd"),
    ("\\sqrt{3}", "\\sqrt{2}", F, "surd"),
    ("3\\sqrt{3}", "\\sqrt{27}", T, "surd"),
    ("2+\\sqrt{3}", "\\sqrt{3}+2", T, "surd"),
    ("2-\\sqrt{3}", "2+\\sqrt{3}", F, "surd"),
    ("\\pi", "\\pi", T, "surd"),
    ("2\\pi", "\\pi", F, "surd"),
    ("\\frac{\\pi}{2}", "\\frac{1}{2}\\pi", T, "surd"),
    ("e^{2}", "e^2", T, "surd"),
    ("\\sqrt[3]{2}", "2^{1/3}", T, "surd"),
    ("\\sqrt{2}", "\\sqrt2", T, "surd"),
    # powers, factorials, binomials
    ("2^{10}", "1024", T, "power"),
    ("3^{4}", "81", T, "power"),
    ("3^{4}", "64", F, "power"),
    ("6", "3!", T, "power"),
    ("120", "5!", T, "power"),
    ("\\binom{5}{2}", "10", T, "power"),
    ("2^{-1}", "\\frac{1}{2}", T, "power"),
    # expressions
    ("x^2+2x+1", "(x+1)^2", T, "expression"),
    ("x^2-1", "(x-1)(x+1)", T, "expression"),
    ("2x", "x+x", T, "expression"),
    ("x+1", "x-1", F, "expression"),
    ("\\frac{x}{2}", "0.5x", T, "expression"),
    ("a+b", "b+a", T, "expression"),
    ("x^2", "x^3", F, "expression"),
    ("2\\cdot 3", "6", T, "expression"),
    ("2\\times 3", "6", T, "expression"),
    # equations
    ("x=3", "3", T, "equation"),
    ("3", "x=3", T, "equation"),
    ("y=2x+1", "y=1+2x", T, "equation"),
    ("y=2x+1", "y=2x-1", F, "equation"),
    ("x=5", "x=6", F, "equation"),
    # intervals
    ("(1,2]", "(1,2]", T, "interval"),
    ("(1,2]", "(1,2)", F, "interval"),
    ("[0,\\infty)", "[0,\\infty)", T, "interval"),
    ("(-\\infty,3)", "(-\\infty,3]", F, "interval"),
    ("(-\\infty,-1)\\cup(1,\\infty)", "(-\\infty,-1)\\cup(1,\\infty)", T, "interval"),
    ("(-\\infty,-1)\\cup(1,\\infty)", "(1,\\infty)\\cup(-\\infty,-1)", T, "interval"),
    ("[2,5]", "[2,6]", F, "interval"),
    ("\\left[2,5\\right]", "[2,5]", T, "interval"),
    ("[\\frac{1}{2},1]", "[0.5,1]", T, "interval"),
    # sets and tuples
    ("\\{1,2,3\\}", "\\{3,2,1\\}", T, "set"),
    ("\\{1,2,3\\}", "\\{1,2\\}", F, "set"),
    ("\\{-1,1\\}", "\\{1,-1\\}", T, "set"),
    ("(1,2)", "(1,2)", T, "tuple"),
    ("(3,-4)", "(3, -4)", T, "tuple"),
    ("(3,-4)", "(-4,3)", F, "tuple"),
    ("(\\frac{1}{2},3)", "(0.5,3)", T, "tuple"),
    ("2,3", "3,2", T, "set"),
    # matrices and vectors
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", T, "matrix"),
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}", T, "matrix"),
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}", F, "matrix"),
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix}1&3\\\\2&4\\end{pmatrix}", F, "matrix"),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", T, "matrix"),
    ("\\begin{pmatrix}\\frac{1}{2}&0\\\\0&1\\end{pmatrix}", "\\begin{pmatrix}0.5&0\\\\0&1\\end{pmatrix}", T, "matrix"),
    # units
    ("5\\text{ cm}", "5", T, "unit"),
    ("5", "5\\text{ cm}", T, "unit"),
    ("5\\text{ cm}", "6\\text{ cm}", F, "unit"),
    ("90^\\circ", "90", T, "unit"),
    ("30^\\circ", "30", T, "unit"),
    ("12\\text{ meters}", "12", T, "unit"),
    ("5\\text{ dollars}", "5", T, "unit"),
    ("90^\\circ", "45^\\circ", F, "unit"),
    # percentages
    ("50\\%", "50\\%", T, "percent"),
    ("25\\%", "50\\%", F, "percent"),
    ("50\\%", "0.5", T, "percent"),
    ("12.5\\%", "\\frac{1}{8}", T, "percent"),
    ("10\\%", "10\\%", T, "percent"),
    # text answers
    ("\\text{Monday}", "\\text{Monday}", T, "text"),
    ("\\text{Monday}", "\\text{Tuesday}", F, "text"),
    ("\\text{(A)}", "\\text{(A)}", T, "text"),
    ("A", "A", T, "text"),
    ("A", "B", F, "text"),
    ("\\text{(B)}", "B", T, "text"),
    ("\\text{yes}", "\\text{no}", F, "text"),
    ("\\text{even}", "\\text{odd}", F, "text"),
    # LaTeX spellings
    ("\\frac{1}{2}", "\\left(\\frac{1}{2}\\right)", T, "latex"),
    ("\\frac{1}{2}", "\\frac 1 2", T, "latex"),
    ("10", "\\mathbf{10}", T, "latex"),
    ("10", "10\\,", T, "latex"),
    ("3", "\\textbf{3}", T, "latex"),
    ("\\dfrac{3}{5}", "\\frac{3}{5}", T, "latex"),
    ("\\frac{3}{5}", "\\displaystyle\\frac{3}{5}", T, "latex"),
    ("\\infty", "\\infty", T, "latex"),
    ("-\\infty", "\\infty", F, "latex"),
    # complex numbers
    ("1+i", "i+1", T, "complex"),
    ("1+i", "1-i", F, "complex"),
]


def response_for(answer: str) -> str:
    return f"<think>\nLet me work it out.\n</think>\nTherefore the answer is $\\boxed{{{answer}}}$."
