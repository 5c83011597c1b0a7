def forward(self, x, mask=None):
    norm = self.norm(x)
    layers_0 = getattr(self.layers, '0')(norm);  norm = None
    gelu = torch.nn.functional.gelu(layers_0);  layers_0 = None
    layers_1 = getattr(self.layers, '1')(gelu);  gelu = None
    gelu_1 = torch.nn.functional.gelu(layers_1);  layers_1 = None
    chunk = gelu_1.chunk(2, dim=-1);  gelu_1 = None
    getitem = chunk[0]
    getitem_1 = chunk[1];  chunk = None
    transpose = getitem.transpose(-2, -1);  getitem = None
    matmul = transpose @ getitem_1;  transpose = None; getitem_1 = None
    getitem_2 = matmul[:, 0, ...];  matmul = None
    scale = self.scale
    getitem_3 = scale[:4];  scale = None
    mul = getitem_2 * getitem_3;  getitem_2 = None; getitem_3 = None
    getattr_1 = x.shape;  x = None
    getitem_4 = getattr_1[0];  getattr_1 = None
    sub = getitem_4 - 1;  getitem_4 = None
    return {'out': mul, 'rows': sub}
