def forward(self, x, w=2.0):
    neg = -x;  x = None
    pow_1 = (-1) ** neg;  neg = None
    mean = pow_1.mean(dim=(0, 1), keepdim=True);  pow_1 = None
    getitem = mean[:, 1::2, None, ...];  mean = None
    return (getitem, w, torch.float16, float('inf'))
